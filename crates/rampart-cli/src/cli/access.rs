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
        /// The identity provider whose groups claim names it.
        #[arg(long)]
        identity_provider: String,
        /// Defaults to EXTERNAL_ID@PROVIDER.
        #[arg(long)]
        display_name: Option<String>,
        /// Output format (as az's `--output`).
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Groups with their object IDs and members.
    List {
        /// Output format (as az's `--output`).
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum IdentityProviderCommand {
    /// Add an OpenID Connect provider (Entra ID, Keycloak, Okta, Google, …). Register the
    /// redirect URI that `identity-provider show` prints at the provider.
    Create {
        /// The resource's name.
        #[arg(long, short = 'n')]
        name: String,
        /// The issuer URL (its /.well-known/openid-configuration is read).
        #[arg(long)]
        issuer: String,
        /// The client ID registered at the identity provider.
        #[arg(long)]
        client_id: String,
        /// Read the client secret from standard input (never on the command line).
        #[arg(long, required = true)]
        client_secret_stdin: bool,
        /// The ID token claim that lists the user's groups.
        #[arg(long, default_value = "groups")]
        groups_claim: String,
        /// The ID token claim that holds the user's name.
        #[arg(long, default_value = "preferred_username")]
        username_claim: String,
        /// Only users whose address is in one of these domains may sign in.
        #[arg(long, num_args = 1..)]
        allowed_domains: Vec<String>,
        /// The provider's TLS chains to the CAs in this PEM file (a private CA).
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// Output format (as az's `--output`).
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// List identity providers (never their secrets).
    List {
        /// Output format (as az's `--output`).
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Show a provider with the redirect URI to register there (never its secret).
    Show {
        /// The resource's name.
        #[arg(long, short = 'n')]
        name: String,
        /// Output format (as az's `--output`).
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Delete a provider with its users and groups.
    Delete {
        /// The resource's name.
        #[arg(long, short = 'n')]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SpCommand {
    /// Create a service principal with a role at one or more scopes; prints its appId,
    /// password and tenant once (as az does).
    CreateForRbac {
        /// The resource's name.
        #[arg(long, short = 'n')]
        name: String,
        /// The role's name.
        #[arg(long)]
        role: String,
        /// Where it applies: subscription, resource group or resource IDs.
        #[arg(long, num_args = 1.., required = true)]
        scopes: Vec<String>,
    },
    /// List service principals (never their secrets).
    List {
        /// Output format (as az's `--output`).
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
        /// The user's principal name (alice@example.com).
        #[arg(long)]
        user_principal_name: String,
        /// The name shown for it.
        #[arg(long)]
        display_name: Option<String>,
        /// Read the password from standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Output format (as az's `--output`).
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// List users.
    List {
        /// Output format (as az's `--output`).
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Show a user.
    Show {
        /// User principal name.
        #[arg(long)]
        id: String,
        /// Output format (as az's `--output`).
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Delete a user with their role assignments and sessions.
    Delete {
        /// Its ID.
        #[arg(long)]
        id: String,
    },
    /// Reset a password (read from standard input); the user's sessions are revoked.
    Update {
        /// Its ID.
        #[arg(long)]
        id: String,
        /// Read the password from standard input.
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
        /// The code from the authenticator app (or a recovery code).
        #[arg(long)]
        code: String,
    },
    /// Turn it off, with a current code (or a recovery code).
    Disable {
        /// The code from the authenticator app (or a recovery code).
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
        /// The role's name.
        #[arg(long)]
        role: String,
        /// Where it applies: a subscription, resource group or resource ID.
        #[arg(long)]
        scope: String,
        /// ISO 8601, e.g. PT1H or PT30M.
        #[arg(long, default_value = "PT1H")]
        duration: String,
        /// Why the access is needed (kept in the audit log).
        #[arg(long)]
        justification: Option<String>,
        /// Output format (as az's `--output`).
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
        /// Output format (as az's `--output`).
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Approve pending activations (an approver; never the requester).
    Approve {
        /// The IDs to act on.
        #[arg(long, num_args = 1.., required = true)]
        ids: Vec<String>,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Deny pending activations (an approver; never the requester).
    Deny {
        /// The IDs to act on.
        #[arg(long, num_args = 1.., required = true)]
        ids: Vec<String>,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// End activations early (yours, or any at a scope where you may assign roles); the
    /// sessions they admitted end.
    Revoke {
        /// The IDs to act on.
        #[arg(long, num_args = 1.., required = true)]
        ids: Vec<String>,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoleDefinitionCommand {
    /// Create a custom role: JSON {"name", "description", "actions", "notActions"}, inline or @FILE.
    Create {
        /// The role's definition (JSON, or @FILE).
        #[arg(long)]
        role_definition: String,
    },
    /// List built-in and custom roles.
    List {
        /// Output format (as az's `--output`).
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
        /// The role's name.
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
        /// Output format (as az's `--output`).
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// List role assignments you may read.
    List {
        /// The user, group or service principal (name, UPN or object ID).
        #[arg(long)]
        assignee: Option<String>,
        /// Where it applies: a subscription, resource group or resource ID.
        #[arg(long)]
        scope: Option<String>,
        /// Eligible (just-in-time) assignments too.
        #[arg(long)]
        include_eligible: bool,
        /// Output format (as az's `--output`).
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Remove assignments by ID, or the one of --assignee, --role and --scope (az's form).
    Delete {
        /// Assignment IDs.
        #[arg(long, num_args = 1.., required_unless_present_all = ["assignee", "role", "scope"], conflicts_with_all = ["assignee", "role", "scope"])]
        ids: Vec<String>,
        /// The user, group or service principal (name, UPN or object ID).
        #[arg(long, requires_all = ["role", "scope"])]
        assignee: Option<String>,
        /// The role's name.
        #[arg(long, requires_all = ["assignee", "scope"])]
        role: Option<String>,
        /// Where it applies: a subscription, resource group or resource ID.
        #[arg(long, requires_all = ["assignee", "role"])]
        scope: Option<String>,
    },
}
