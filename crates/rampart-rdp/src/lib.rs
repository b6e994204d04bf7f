//! The RDP client behind the browser desktop, through IronRDP: the gateway hands over a TCP
//! connection it dialled after the policy allowed it; this crate runs the RDP connection
//! sequence (TLS, with NLA when the server asks for it), checks the server's certificate
//! against the one pinned for that target, decodes the desktop into an RGBA image (or, for a
//! browser that decodes H.264, passes the graphics pipeline's video through: gfx.rs), and
//! turns browser input into RDP fast-path input. It knows no HTTP, no store and no policy.
//!
//! Longer than 600 lines because the connection sequence and the session loop share IronRDP state that a split would pass around.

mod clipboard;
mod encode;
mod gfx;
mod keys;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use ironrdp_connector::sspi::generator::NetworkRequest;
use ironrdp_connector::{
    BitmapConfig, ClientConnector, ConnectionOutcome, ConnectorResult, Credentials, DesktopSize,
};
use ironrdp_graphics::image_processing::PixelFormat;
use ironrdp_input::{Database, MouseButton, MousePosition, Operation, WheelRotations};
use ironrdp_pdu::gcc::KeyboardType;
use ironrdp_pdu::geometry::InclusiveRectangle;
use ironrdp_pdu::rdp::capability_sets::MajorPlatformType;
use ironrdp_pdu::rdp::capability_sets::client_codecs_capabilities;
use ironrdp_session::image::DecodedImage;
use ironrdp_session::{ActiveStage, ActiveStageBuilder, ActiveStageOutput};
use ironrdp_tokio::{FramedWrite, NetworkClient, TokioFramed};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

pub use clipboard::{MAX_CLIPBOARD_TEXT, text_for_remote, text_from_remote};
pub use encode::ImageFormat;
pub use gfx::{GfxPassthrough, GfxUpdate};
pub use keys::scancode_for_code;

use clipboard::{ClipboardEvent, ClipboardEvents, QueueingBackend};
use ironrdp_cliprdr::CliprdrClient;
use ironrdp_cliprdr::pdu::{ClipboardFormat, ClipboardFormatId, OwnedFormatDataResponse};

#[derive(Debug, thiserror::Error)]
pub enum RdpError {
    #[error(
        "the target's TLS certificate has changed: pinned SHA256:{pinned}, offered SHA256:{offered}. This may be \
         an attack; an operator who knows the certificate was changed can forget the pinned one \
         (`rampart network bastion host-key forget`)"
    )]
    CertificateChanged { pinned: String, offered: String },
    #[error("TLS with the RDP server failed: {0}")]
    Tls(String),
    #[error("no security protocol in common with the RDP server: {0}")]
    Security(String),
    #[error("the RDP server refused the sign-in: {0}")]
    AuthenticationFailed(String),
    #[error("the RDP connection failed: {0}")]
    Connect(String),
    #[error("the RDP session failed: {0}")]
    Session(String),
    #[error("the RDP server ended the session: {0}")]
    Ended(String),
}

/// Who signs in to the RDP server.
pub struct RdpCredentials {
    pub username: String,
    pub password: String,
    pub domain: Option<String>,
}

impl std::fmt::Debug for RdpCredentials {
    // Never prints the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RdpCredentials").field("username", &self.username).finish_non_exhaustive()
    }
}

/// A changed part of the desktop, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u16,
    pub y: u16,
    pub width: u16,
    pub height: u16,
}

impl Rect {
    fn from_inclusive(r: &InclusiveRectangle) -> Rect {
        Rect {
            x: r.left,
            y: r.top,
            width: r.right.saturating_sub(r.left).saturating_add(1),
            height: r.bottom.saturating_sub(r.top).saturating_add(1),
        }
    }

    /// The smallest rectangle holding both (a server may send any numbers: no overflow).
    pub fn union(self, other: Rect) -> Rect {
        let end = |start: u16, len: u16| u32::from(start) + u32::from(len);
        let x = self.x.min(other.x);
        let y = self.y.min(other.y);
        let right = end(self.x, self.width).max(end(other.x, other.width));
        let bottom = end(self.y, self.height).max(end(other.y, other.height));
        let clamp = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
        Rect { x, y, width: clamp(right - u32::from(x)), height: clamp(bottom - u32::from(y)) }
    }
}

/// Kerberos would need the gateway to reach a KDC; NLA here is NTLM, which needs no network.
struct NoKerberos;

impl NetworkClient for NoKerberos {
    async fn send(&mut self, _request: &NetworkRequest) -> ConnectorResult<Vec<u8>> {
        Err(ironrdp_connector::general_err!("Kerberos is not supported; use a local or NTLM account"))
    }
}

/// The certificate the server showed, recorded by the TLS verifier.
#[derive(Debug, Default)]
struct SeenCertificate {
    der: Option<Vec<u8>>,
}

/// RDP servers present self-signed certificates; trust is pin-on-first-use per target,
/// checked after the handshake (the verifier only records what it saw).
#[derive(Debug)]
struct RecordingVerifier {
    seen: Arc<Mutex<SeenCertificate>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).der = Some(end_entity.to_vec());
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

fn config(credentials: RdpCredentials, size: DesktopSize, video: bool) -> ironrdp_connector::Config {
    ironrdp_connector::Config {
        desktop_size: size,
        monitor_layout: None,
        desktop_scale_factor: 0,
        desktop_physical_size: None,
        desktop_orientation: None,
        device_scale_factor: None,
        monitor_extended_layout: None,
        relative_mouse_input: false,
        enable_tls: true,
        enable_credssp: true,
        enable_standard_rdp_security: false,
        credentials: Credentials::UsernamePassword {
            username: credentials.username,
            password: credentials.password,
        },
        domain: credentials.domain,
        client_build: 0,
        client_name: "rampart".to_string(),
        keyboard_type: KeyboardType::IBM_ENHANCED,
        keyboard_subtype: 0,
        keyboard_functional_keys_count: 12,
        keyboard_layout: 0,
        connection_type: ironrdp_pdu::gcc::ConnectionType::Lan,
        ime_file_name: String::new(),
        // Every codec IronRDP decodes (RemoteFX, QOI, …): FreeRDP's shadow server sends only
        // surface commands, and a server offered nothing it likes draws nothing.
        bitmap: Some(BitmapConfig {
            lossy_compression: true,
            color_depth: 32,
            codecs: client_codecs_capabilities(&["remotefx:off"]).unwrap_or_default(),
        }),
        dig_product_id: String::new(),
        client_dir: "C:\\Windows\\System32\\mstscax.dll".to_string(),
        alternate_shell: String::new(),
        work_dir: String::new(),
        remote_application_mode: false,
        rail_support_level: ironrdp_pdu::rdp::capability_sets::RailSupportLevel::empty(),
        platform: MajorPlatformType::UNIX,
        hardware_id: None,
        request_data: None,
        // xrdp signs in with the given credentials only when asked to.
        autologon: true,
        enable_audio_playback: false,
        enable_audio_capture: false,
        performance_flags: Default::default(),
        license_cache: None,
        timezone_info: Default::default(),
        compression_type: None,
        // The browser draws its own pointer.
        enable_server_pointer: false,
        pointer_software_rendering: true,
        multitransport_flags: None,
        // The graphics pipeline only for a browser that decodes its H.264 (gfx.rs); plain
        // bitmap updates otherwise, and from servers without the pipeline.
        support_dyn_vc_gfx_protocol: video,
    }
}

/// A live RDP session: the decoded desktop and the connection to the server.
pub struct RdpSession {
    framed: TokioFramed<TlsStream<TcpStream>>,
    active: ActiveStage,
    image: DecodedImage,
    input: Database,
    certificate: String,
    /// What the clipboard channel reported; `None` when copy and paste is off.
    clipboard_events: Option<ClipboardEvents>,
    /// The browser's clipboard text, offered to the remote machine (Windows line ends).
    local_clipboard: Option<String>,
    /// Copy and paste may be turned off (and on) while the session runs; the channel stays.
    clipboard_allowed: bool,
    /// The graphics pipeline's first updates, seen while waiting for the desktop.
    first_gfx: Vec<GfxUpdate>,
}

/// What a frame or an input changed.
#[derive(Debug, Default)]
pub struct Changes {
    /// Parts of the desktop to redraw.
    pub rects: Vec<Rect>,
    /// What the graphics pipeline drew, in order (only when the browser decodes video).
    pub gfx: Vec<GfxUpdate>,
    /// Text copied on the remote machine (browser line ends), for the browser's clipboard.
    pub clipboard: Option<String>,
}

/// One frame read from the server, to hand to [`RdpSession::process`].
pub struct Frame {
    action: ironrdp_pdu::Action,
    payload: bytes::BytesMut,
}

impl Frame {
    /// Its size on the wire (for byte counts).
    pub fn len(&self) -> usize {
        self.payload.len()
    }

    pub fn is_empty(&self) -> bool {
        self.payload.is_empty()
    }

    /// Its bytes as the server sent them (for session observers).
    pub fn as_bytes(&self) -> &[u8] {
        &self.payload
    }
}

impl RdpSession {
    /// Runs the connection sequence on `stream`: TLS (its certificate checked against
    /// `pinned`, the SHA-256 of the certificate in hex; anything is accepted and reported
    /// when nothing is pinned yet), NLA when the server wants it, the capability exchange.
    /// With `clipboard`, text is copied and pasted both ways; without, the clipboard channel
    /// is not even opened. With `video` (the browser decodes H.264), the graphics pipeline is
    /// offered and its video passed through.
    pub async fn connect(
        stream: TcpStream,
        server: SocketAddr,
        pinned: Option<String>,
        credentials: RdpCredentials,
        (width, height): (u16, u16),
        (clipboard, video): (bool, bool),
    ) -> Result<RdpSession, RdpError> {
        let _ = stream.set_nodelay(true);
        let client_addr = stream.local_addr().map_err(|e| RdpError::Connect(e.to_string()))?;
        let size = DesktopSize { width, height };
        let mut connector = ClientConnector::new(config(credentials, size, video), client_addr);
        if video {
            connector.attach_static_channel(
                ironrdp_dvc::DrdynvcClient::new().with_dynamic_channel(gfx::GfxPassthrough::default()),
            );
        }
        let clipboard_events = clipboard.then(ClipboardEvents::default);
        if let Some(events) = &clipboard_events {
            connector
                .attach_static_channel(CliprdrClient::new(Box::new(QueueingBackend::new(events.clone()))));
        }
        let mut framed = TokioFramed::new(stream);
        let should_upgrade =
            ironrdp_tokio::connect_begin(&mut framed, &mut connector).await.map_err(|e| connect_error(&e))?;
        let stream = framed.into_inner_no_leftover();

        let seen = Arc::new(Mutex::new(SeenCertificate::default()));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| RdpError::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(RecordingVerifier { seen: seen.clone(), provider }))
            .with_no_client_auth();
        // CredSSP does not support TLS session resumption.
        tls.resumption = rustls::client::Resumption::disabled();
        let name = rustls::pki_types::ServerName::IpAddress(server.ip().into());
        let tls_stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(name, stream)
            .await
            .map_err(|e| RdpError::Tls(e.to_string()))?;
        let der = seen.lock().unwrap_or_else(|p| p.into_inner()).der.clone().unwrap_or_default();
        let certificate = hex::encode(Sha256::digest(&der));
        if let Some(pinned) = pinned
            && pinned != certificate
        {
            return Err(RdpError::CertificateChanged { pinned, offered: certificate });
        }
        let server_public_key = subject_public_key(&der)?;

        let upgraded = ironrdp_tokio::mark_as_upgraded(should_upgrade, &mut connector);
        let mut framed = TokioFramed::new(tls_stream);
        let outcome = ironrdp_tokio::connect_finalize(
            upgraded,
            connector,
            &mut framed,
            &mut NoKerberos,
            server.ip().to_string().into(),
            server_public_key,
            None,
        )
        .await
        .map_err(|e| connect_error(&e))?;
        let result = match outcome {
            ConnectionOutcome::Connected(result) => result,
            _ => return Err(RdpError::Connect("the server redirected the connection elsewhere".into())),
        };
        let image =
            DecodedImage::new(PixelFormat::RgbA32, result.desktop_size.width, result.desktop_size.height);
        let active = ActiveStageBuilder {
            static_channels: result.static_channels,
            user_channel_id: result.user_channel_id,
            io_channel_id: result.io_channel_id,
            message_channel_id: result.message_channel_id,
            share_id: result.share_id,
            compression_type: result.compression_type,
            enable_server_pointer: result.enable_server_pointer,
            pointer_software_rendering: result.pointer_software_rendering,
        }
        .build();
        Ok(RdpSession {
            framed,
            active,
            image,
            input: Database::new(),
            certificate,
            clipboard_allowed: clipboard_events.is_some(),
            clipboard_events,
            local_clipboard: None,
            first_gfx: Vec::new(),
        })
    }

    /// Waits, at most `limit`, until the server draws the desktop for the first time. Servers
    /// such as FreeRDP's and xrdp check the password only after the connection is up and
    /// then just close it, so a close before the first drawing is reported as a sign-in
    /// failure. `Ok(false)`: still connected, nothing drawn yet.
    pub async fn wait_for_desktop(&mut self, limit: std::time::Duration) -> Result<bool, RdpError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let frame = match tokio::time::timeout_at(deadline, self.read_frame()).await {
                Err(_) => return Ok(false),
                Ok(Ok(frame)) => frame,
                Ok(Err(_)) => {
                    return Err(RdpError::AuthenticationFailed(
                        "the server closed the connection before showing the desktop; most often the user name \
                         or password is wrong"
                            .into(),
                    ));
                }
            };
            let changes = self.process(frame).await?;
            // The pipeline's first updates (a reset, the first key picture) are needed later.
            self.first_gfx.extend(changes.gfx);
            if !changes.rects.is_empty() || !self.first_gfx.is_empty() {
                return Ok(true);
            }
        }
    }

    /// The SHA-256 of the server's certificate, hex (to pin on first use).
    pub fn certificate(&self) -> &str {
        &self.certificate
    }

    /// Whether the session has a clipboard channel (copy and paste was on when it connected).
    pub fn clipboard(&self) -> bool {
        self.clipboard_events.is_some()
    }

    /// Whether text is copied and pasted now.
    pub fn clipboard_allowed(&self) -> bool {
        self.clipboard_allowed
    }

    /// Turns copy and paste off (or back on) in a live session. Turning it off also takes
    /// back the text offered to the remote machine.
    pub async fn allow_clipboard(&mut self, allowed: bool) -> Result<(), RdpError> {
        let allowed = allowed && self.clipboard_events.is_some();
        if allowed == self.clipboard_allowed {
            return Ok(());
        }
        self.clipboard_allowed = allowed;
        if allowed || self.local_clipboard.take().is_none() {
            return Ok(());
        }
        let Some(cliprdr) = self.active.get_svc_processor_mut::<CliprdrClient>() else {
            return Ok(());
        };
        if !cliprdr.is_ready() {
            return Ok(());
        }
        let messages =
            cliprdr.initiate_copy(&[]).map_err(|e| RdpError::Session(format!("clipboard channel: {e}")))?;
        self.send_clipboard(messages).await
    }

    /// What the graphics pipeline drew while [`RdpSession::wait_for_desktop`] waited: the
    /// start of what the browser is sent.
    pub fn take_first_gfx(&mut self) -> Vec<GfxUpdate> {
        std::mem::take(&mut self.first_gfx)
    }

    /// Whether the server draws through the graphics pipeline, its video passed through to
    /// the browser ([`Changes::gfx`]) rather than decoded into the image.
    pub fn video(&self) -> bool {
        self.active.get_dvc::<gfx::GfxPassthrough>().is_some_and(|g| g.processor().active())
    }

    pub fn size(&self) -> (u16, u16) {
        (self.image.width(), self.image.height())
    }

    /// Reads the next frame from the server (cancel-safe: a partial read stays buffered).
    pub async fn read_frame(&mut self) -> Result<Frame, RdpError> {
        let (action, payload) =
            self.framed.read_pdu().await.map_err(|e| RdpError::Ended(format!("connection closed: {e}")))?;
        Ok(Frame { action, payload })
    }

    /// Decodes a frame into the desktop image, answers the server where the protocol wants
    /// it, and returns what changed.
    pub async fn process(&mut self, frame: Frame) -> Result<Changes, RdpError> {
        let outputs = self
            .active
            .process(&mut self.image, frame.action, &frame.payload, None)
            .map_err(|e| RdpError::Session(e.to_string()))?;
        self.handle(outputs).await
    }

    async fn handle(&mut self, outputs: Vec<ActiveStageOutput>) -> Result<Changes, RdpError> {
        let mut changes = Changes::default();
        for out in outputs {
            match out {
                ActiveStageOutput::ResponseFrame(bytes) => {
                    self.framed.write_all(&bytes).await.map_err(|e| RdpError::Session(e.to_string()))?;
                }
                ActiveStageOutput::GraphicsUpdate(rect) => changes.rects.push(Rect::from_inclusive(&rect)),
                ActiveStageOutput::Terminate(reason) => {
                    return Err(RdpError::Ended(reason.description().to_string()));
                }
                _ => {}
            }
        }
        if let Some(mut gfx) = self.active.get_dvc_mut::<gfx::GfxPassthrough>() {
            changes.gfx = gfx.processor_mut().drain();
        }
        self.pump_clipboard(&mut changes).await?;
        Ok(changes)
    }

    /// Acts on what the clipboard channel reported while frames were processed.
    async fn pump_clipboard(&mut self, changes: &mut Changes) -> Result<(), RdpError> {
        let Some(events) = self.clipboard_events.clone() else {
            return Ok(());
        };
        loop {
            let Some(event) = events.lock().unwrap_or_else(|p| p.into_inner()).pop_front() else {
                return Ok(());
            };
            let offered: Vec<ClipboardFormat> = match self.local_clipboard {
                Some(_) => vec![ClipboardFormat::new(ClipboardFormatId::CF_UNICODETEXT)],
                None => Vec::new(),
            };
            let Some(cliprdr) = self.active.get_svc_processor_mut::<CliprdrClient>() else {
                return Ok(());
            };
            let allowed = self.clipboard_allowed;
            let messages = match event {
                ClipboardEvent::FormatListWanted => cliprdr.initiate_copy(&offered),
                ClipboardEvent::RemoteCopy { .. } if !allowed => continue,
                ClipboardEvent::RemoteCopy { text: true } => {
                    cliprdr.initiate_paste(ClipboardFormatId::CF_UNICODETEXT)
                }
                ClipboardEvent::RemoteCopy { text: false } => continue,
                ClipboardEvent::DataWanted(format) => {
                    let response = match &self.local_clipboard {
                        Some(text) if allowed && format == ClipboardFormatId::CF_UNICODETEXT => {
                            OwnedFormatDataResponse::new_unicode_string(text)
                        }
                        _ => OwnedFormatDataResponse::new_error(),
                    };
                    cliprdr.submit_format_data(response)
                }
                ClipboardEvent::Data(text) => {
                    if let Some(text) = text.filter(|_| allowed) {
                        changes.clipboard = Some(text_from_remote(&text));
                    }
                    continue;
                }
            }
            .map_err(|e| RdpError::Session(format!("clipboard channel: {e}")))?;
            self.send_clipboard(messages).await?;
        }
    }

    async fn send_clipboard(
        &mut self,
        messages: ironrdp_cliprdr::CliprdrSvcMessages<ironrdp_cliprdr::Client>,
    ) -> Result<(), RdpError> {
        let bytes = self
            .active
            .process_svc_processor_messages(messages)
            .map_err(|e| RdpError::Session(format!("clipboard channel: {e}")))?;
        self.framed.write_all(&bytes).await.map_err(|e| RdpError::Session(e.to_string()))
    }

    /// Puts the browser's clipboard text on offer to the remote machine (it is sent when
    /// something there pastes). Does nothing when copy and paste is off.
    pub async fn set_clipboard(&mut self, text: &str) -> Result<(), RdpError> {
        if !self.clipboard_allowed {
            return Ok(());
        }
        self.local_clipboard = Some(text_for_remote(text));
        let Some(cliprdr) = self.active.get_svc_processor_mut::<CliprdrClient>() else {
            return Ok(());
        };
        // Before the channel is ready, the text is announced when the server asks for it.
        if !cliprdr.is_ready() {
            return Ok(());
        }
        let messages = cliprdr
            .initiate_copy(&[ClipboardFormat::new(ClipboardFormatId::CF_UNICODETEXT)])
            .map_err(|e| RdpError::Session(format!("clipboard channel: {e}")))?;
        self.send_clipboard(messages).await
    }

    /// Applies browser input (positions in desktop pixels).
    pub async fn input(&mut self, events: &[InputEvent]) -> Result<Changes, RdpError> {
        let (w, h) = self.size();
        let operations: Vec<Operation> = events
            .iter()
            .filter_map(|e| match *e {
                InputEvent::MouseMove { x, y } => Some(Operation::MouseMove(MousePosition {
                    x: x.min(w.saturating_sub(1)),
                    y: y.min(h.saturating_sub(1)),
                })),
                InputEvent::MouseButton { button, down } => {
                    let b = MouseButton::from_web_button(button)?;
                    Some(if down {
                        Operation::MouseButtonPressed(b)
                    } else {
                        Operation::MouseButtonReleased(b)
                    })
                }
                InputEvent::Wheel { vertical, units } => Some(Operation::WheelRotations(WheelRotations {
                    is_vertical: vertical,
                    rotation_units: units,
                })),
                InputEvent::Key { scancode, down } => {
                    let code = ironrdp_input::Scancode::from_u16(scancode);
                    Some(if down { Operation::KeyPressed(code) } else { Operation::KeyReleased(code) })
                }
            })
            .collect();
        let fastpath = self.input.apply(operations);
        if fastpath.is_empty() {
            return Ok(Changes::default());
        }
        let outputs = self
            .active
            .process_fastpath_input(&mut self.image, &fastpath)
            .map_err(|e| RdpError::Session(e.to_string()))?;
        self.handle(outputs).await
    }

    /// Releases every key and button (the browser lost focus or went away).
    pub async fn release_all(&mut self) -> Result<(), RdpError> {
        let fastpath = self.input.release_all();
        let outputs = self
            .active
            .process_fastpath_input(&mut self.image, &fastpath)
            .map_err(|e| RdpError::Session(e.to_string()))?;
        self.handle(outputs).await.map(|_| ())
    }

    /// A part of the desktop as an image, opaque: PNG, or JPEG when the part is large and
    /// looks like a photo.
    pub fn image(&self, rect: Rect) -> Result<(ImageFormat, Vec<u8>), RdpError> {
        let (w, h) = self.size();
        let x = rect.x.min(w);
        let y = rect.y.min(h);
        let width = rect.width.min(w - x);
        let height = rect.height.min(h - y);
        // (x + width ≤ w and y + height ≤ h from here on.)
        if width == 0 || height == 0 {
            return Err(RdpError::Session("an empty rectangle".into()));
        }
        let stride = usize::from(w) * 4;
        let data = self.image.data();
        let mut pixels = vec![0u8; usize::from(width) * usize::from(height) * 3];
        for (row, out) in
            (usize::from(y)..usize::from(y + height)).zip(pixels.chunks_exact_mut(usize::from(width) * 3))
        {
            let start = row * stride + usize::from(x) * 4;
            let line = data.get(start..start + usize::from(width) * 4).unwrap_or_default();
            for (rgb, rgba) in out.chunks_exact_mut(3).zip(line.chunks_exact(4)) {
                rgb.copy_from_slice(&rgba[..3]);
            }
        }
        encode::encode(&pixels, width, height).map_err(RdpError::Session)
    }
}

/// Input from the browser, already in RDP terms.
#[derive(Debug, Clone, Copy)]
pub enum InputEvent {
    MouseMove {
        x: u16,
        y: u16,
    },
    /// `button` as the DOM numbers it (0 left, 1 middle, 2 right).
    MouseButton {
        button: u8,
        down: bool,
    },
    Wheel {
        vertical: bool,
        units: i16,
    },
    /// A scancode as [`scancode_for_code`] gives it (0xE0xx for extended keys).
    Key {
        scancode: u16,
        down: bool,
    },
}

fn subject_public_key(der: &[u8]) -> Result<Vec<u8>, RdpError> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der)
        .map_err(|e| RdpError::Tls(format!("server certificate: {e}")))?;
    cert.tbs_certificate()
        .subject_public_key_info()
        .subject_public_key
        .as_bytes()
        .map(<[u8]>::to_vec)
        .ok_or_else(|| RdpError::Tls("the server certificate's public key is not byte-aligned".into()))
}

fn connect_error(e: &ironrdp_connector::ConnectorError) -> RdpError {
    use ironrdp_connector::ConnectorErrorKind as Kind;
    use ironrdp_pdu::nego::FailureCode;
    match e.kind() {
        Kind::Negotiation(failure) => RdpError::Security(match failure.code() {
            FailureCode::HYBRID_REQUIRED_BY_SERVER => {
                "the server requires Network Level Authentication (NLA) with a method the gateway cannot use \
                 (it signs in with NTLM; Kerberos needs a domain controller the gateway does not reach)"
                    .to_string()
            }
            FailureCode::SSL_NOT_ALLOWED_BY_SERVER => {
                "the server offers only the old RDP security without TLS, \
                 which the gateway refuses: turn on TLS or NLA on the server"
                    .to_string()
            }
            FailureCode::SSL_CERT_NOT_ON_SERVER => {
                "the server has no TLS certificate to offer: give it one, or turn on NLA".to_string()
            }
            FailureCode::SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER => {
                "the server wants a client certificate, which the gateway does not have".to_string()
            }
            code => format!("the server refused every security protocol offered: {code}"),
        }),
        Kind::Credssp(_) | Kind::AccessDenied => RdpError::AuthenticationFailed(format!(
            "Network Level Authentication (NLA) refused the sign-in: the user name, password or domain is \
             wrong, or the account may not sign in remotely ({e})"
        )),
        _ => {
            let lower = format!("{e:?}").to_lowercase();
            if lower.contains("logon") || lower.contains("access denied") {
                RdpError::AuthenticationFailed(e.to_string())
            } else {
                RdpError::Connect(e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rectangles_merge_without_overflow() {
        let a = Rect { x: 10, y: 20, width: 5, height: 5 };
        let b = Rect { x: 0, y: 30, width: 3, height: 10 };
        assert_eq!(a.union(b), Rect { x: 0, y: 20, width: 15, height: 20 });
        let edge =
            Rect::from_inclusive(&InclusiveRectangle { left: 1, top: 0, right: u16::MAX, bottom: u16::MAX });
        let merged = edge.union(Rect { x: 0, y: 0, width: 1, height: 1 });
        assert_eq!((merged.x, merged.width), (0, u16::MAX));
    }
}
