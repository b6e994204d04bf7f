//! The grammar of identities and access: `ad user|sp|group`, `identity-provider`, and `role
//! definition|assignment|activate|activation`, as az spells them.

use std::path::PathBuf;

use clap::Subcommand;

use super::OutputFormat;

#[derive(Debug, Subcommand)]
pub enum AdCommand {
    /// Local users and their two-step sign-in.
    #[command(subcommand)]
    User(UserCommand),
    /// Groups of an identity provider: a role assigned to a group admits its members.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Service principals: identities for automation.
    #[command(subcommand)]
    Sp(SpCommand),
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Add a provider's group before anyone of it signed in (sign-ins add groups too).
    Create {
        /// The group as the provider's groups claim names it (`ops`, an Entra object ID).
        #[arg(long)]
        external_id: String,
        #[arg(long)]
        identity_provider: String,
        /// Defaults to EXTERNAL_ID@PROVIDER.
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Groups with their object IDs and members.
    List {
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum IdentityProviderCommand {
    /// Add an OpenID Connect provider (Entra ID, Keycloak, Okta, Google, …). Register the
    /// redirect URI that `identity-provider show` prints at the provider.
    Create {
        #[arg(long, short = 'n')]
        name: String,
        /// The issuer URL (its /.well-known/openid-configuration is read).
        #[arg(long)]
        issuer: String,
        #[arg(long)]
        client_id: String,
        /// Read the client secret from standard input (never on the command line).
        #[arg(long, required = true)]
        client_secret_stdin: bool,
        #[arg(long, default_value = "groups")]
        groups_claim: String,
        #[arg(long, default_value = "preferred_username")]
        username_claim: String,
        /// Only users whose address is in one of these domains may sign in.
        #[arg(long, num_args = 1..)]
        allowed_domains: Vec<String>,
        /// The provider's TLS chains to the CAs in this PEM file (a private CA).
        #[arg(long)]
        ca_file: Option<PathBuf>,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// List identity providers (never their secrets).
    List {
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Show a provider with the redirect URI to register there (never its secret).
    Show {
        #[arg(long, short = 'n')]
        name: String,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Delete a provider with its users and groups.
    Delete {
        #[arg(long, short = 'n')]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SpCommand {
    /// Create a service principal with a role at one or more scopes; prints its appId,
    /// password and tenant once (as az does).
    CreateForRbac {
        #[arg(long, short = 'n')]
        name: String,
        #[arg(long)]
        role: String,
        #[arg(long, num_args = 1.., required = true)]
        scopes: Vec<String>,
    },
    /// List service principals (never their secrets).
    List {
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Delete a service principal (and its role assignments).
    Delete {
        /// Application ID.
        #[arg(long)]
        id: String,
    },
    /// The service principal's credentials.
    #[command(subcommand)]
    Credential(SpCredentialCommand),
}

#[derive(Debug, Subcommand)]
pub enum SpCredentialCommand {
    /// A new secret (printed once); the old one stops working.
    Reset {
        /// Application ID.
        #[arg(long)]
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a local user; the password is read from standard input.
    Create {
        #[arg(long)]
        user_principal_name: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long, required = true)]
        password_stdin: bool,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// List users.
    List {
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Show a user.
    Show {
        /// User principal name.
        #[arg(long)]
        id: String,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Delete a user with their role assignments and sessions.
    Delete {
        #[arg(long)]
        id: String,
    },
    /// Reset a password (read from standard input); the user's sessions are revoked.
    Update {
        #[arg(long)]
        id: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Two-step sign-in (TOTP) of the signed-in user; `reset` is an administrator's.
    #[command(subcommand)]
    Mfa(MfaCommand),
}

#[derive(Debug, Subcommand)]
pub enum MfaCommand {
    /// Start: prints the otpauth URI to add to an authenticator app.
    Enable,
    /// Finish with a code from the app: turns it on and prints recovery codes once.
    Verify {
        #[arg(long)]
        code: String,
    },
    /// Turn it off, with a current code (or a recovery code).
    Disable {
        #[arg(long)]
        code: String,
    },
    /// Remove a user's authenticator (a lost device).
    Reset {
        /// User principal name.
        #[arg(long)]
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Built-in and custom role definitions.
    #[command(subcommand)]
    Definition(RoleDefinitionCommand),
    /// Role assignments: who has which role at which scope.
    #[command(subcommand)]
    Assignment(RoleAssignmentCommand),
    /// Activate an eligible assignment of yours (just-in-time access) for a while.
    Activate {
        #[arg(long)]
        role: String,
        #[arg(long)]
        scope: String,
        /// ISO 8601, e.g. PT1H or PT30M.
        #[arg(long, default_value = "PT1H")]
        duration: String,
        #[arg(long)]
        justification: Option<String>,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Activations: list, approve, deny, revoke.
    #[command(subcommand)]
    Activation(ActivationCommand),
}

#[derive(Debug, Subcommand)]
pub enum ActivationCommand {
    /// Your activations, those you may approve, and (with role-assignment write) everyone's.
    List {
        /// Only those waiting for an approver.
        #[arg(long)]
        pending: bool,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Approve pending activations (an approver; never the requester).
    Approve {
        #[arg(long, num_args = 1.., required = true)]
        ids: Vec<String>,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Deny pending activations (an approver; never the requester).
    Deny {
        #[arg(long, num_args = 1.., required = true)]
        ids: Vec<String>,
        #[arg(long)]
        reason: Option<String>,
    },
    /// End activations early (yours, or any at a scope where you may assign roles); the
    /// sessions they admitted end.
    Revoke {
        #[arg(long, num_args = 1.., required = true)]
        ids: Vec<String>,
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoleDefinitionCommand {
    /// Create a custom role: JSON {"name", "description", "actions", "notActions"}, inline or @FILE.
    Create {
        #[arg(long)]
        role_definition: String,
    },
    /// List built-in and custom roles.
    List {
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoleAssignmentCommand {
    /// Assign a role at a scope (standing, or eligible with --eligible).
    Create {
        /// A user principal name, group name or application ID.
        #[arg(long, required_unless_present = "assignee_object_id", conflicts_with = "assignee_object_id")]
        assignee: Option<String>,
        /// The principal's object ID (a group's, from `rampart ad group list`).
        #[arg(long)]
        assignee_object_id: Option<String>,
        /// User, Group or ServicePrincipal: the assignee must be of this kind.
        #[arg(long, value_parser = ["User", "Group", "ServicePrincipal"])]
        assignee_principal_type: Option<String>,
        #[arg(long)]
        role: String,
        /// /subscriptions/S[/resourceGroups/G[/providers/…]] (S may be the subscription's name).
        #[arg(long)]
        scope: String,
        /// Limit IP-based connections to these networks (comma-separated CIDRs).
        #[arg(long, value_name = "CIDR[,CIDR…]")]
        condition_networks: Option<String>,
        /// Limit IP-based connections to these ports (comma-separated).
        #[arg(long, value_name = "PORT[,PORT…]")]
        condition_ports: Option<String>,
        /// Eligible, not standing: the role is in force only while activated (`role activate`).
        #[arg(long)]
        eligible: bool,
        /// The longest an activation may last, ISO 8601 [default: PT8H].
        #[arg(long, requires = "eligible")]
        max_duration: Option<String>,
        /// Activations wait for an approver (--approver).
        #[arg(long, requires = "eligible")]
        require_approval: bool,
        /// Users or groups who may approve (names or object IDs).
        #[arg(long, num_args = 1.., requires = "require_approval")]
        approver: Vec<String>,
        /// Activations must say why (--justification).
        #[arg(long, requires = "eligible")]
        require_justification: bool,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// List role assignments you may read.
    List {
        #[arg(long)]
        assignee: Option<String>,
        #[arg(long)]
        scope: Option<String>,
        /// Eligible (just-in-time) assignments too.
        #[arg(long)]
        include_eligible: bool,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Remove assignments by ID, or the one of --assignee, --role and --scope (az's form).
    Delete {
        /// Assignment IDs.
        #[arg(long, num_args = 1.., required_unless_present_all = ["assignee", "role", "scope"], conflicts_with_all = ["assignee", "role", "scope"])]
        ids: Vec<String>,
        #[arg(long, requires_all = ["role", "scope"])]
        assignee: Option<String>,
        #[arg(long, requires_all = ["assignee", "scope"])]
        role: Option<String>,
        #[arg(long, requires_all = ["assignee", "role"])]
        scope: Option<String>,
    },
}
