//! Channel credentials of each provider, as a business enters them when it connects a
//! channel, and the signatures each provider puts on its webhooks under them, computed
//! independently of the gateway.
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use ism_proto::gateway::v1 as gw;
use ism_proto::gateway::v1::channel_credentials::Kind as Given;

use crate::sign;

/// The Meta app's secret, which signs Messenger, Instagram and WhatsApp webhooks.
pub const APP_SECRET: &str = "meta-app-secret";
/// The token Meta echoes in its subscription handshake.
pub const VERIFY_TOKEN: &str = "meatyhamhock";
/// The Twilio account's auth token, which signs its webhooks.
pub const TWILIO_TOKEN: &str = "twilio-auth-token";
/// The LINE channel secret, which signs its webhooks.
pub const LINE_SECRET: &str = "line-channel-secret";
/// The Viber bot token, which signs its webhooks.
pub const VIBER_TOKEN: &str = "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9";

/// A Messenger Page or Instagram account.
pub fn meta(account_id: &str) -> Given {
    Given::Meta(gw::MetaCredentials {
        account_id: account_id.into(),
        access_token: "page-token".into(),
        app_secret: APP_SECRET.into(),
        verify_token: VERIFY_TOKEN.into(),
    })
}

/// A WhatsApp Business phone number.
pub fn whatsapp(phone_number_id: &str) -> Given {
    Given::Whatsapp(gw::WhatsAppCredentials {
        phone_number_id: phone_number_id.into(),
        access_token: "system-user-token".into(),
        app_secret: APP_SECRET.into(),
        verify_token: VERIFY_TOKEN.into(),
    })
}

/// A Telegram bot.
pub fn telegram() -> Given {
    Given::Telegram(gw::TelegramCredentials {
        bot_token: "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11".into(),
    })
}

/// A Twilio number sending from +15017122661.
pub fn twilio() -> Given {
    Given::Twilio(gw::TwilioCredentials {
        account_sid: "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX".into(),
        auth_token: TWILIO_TOKEN.into(),
        from: "+15017122661".into(),
    })
}

/// A LINE Messaging API channel.
pub fn line() -> Given {
    Given::Line(gw::LineCredentials {
        channel_secret: LINE_SECRET.into(),
        channel_access_token: "line-token".into(),
    })
}

/// A Viber bot.
pub fn viber() -> Given {
    Given::Viber(gw::ViberCredentials {
        auth_token: VIBER_TOKEN.into(),
    })
}

/// Meta's `x-hub-signature-256`: `sha256=` and the hex HMAC-SHA256 of the body.
pub fn meta_signature(body: &[u8]) -> String {
    sign(APP_SECRET, body)
}

/// Twilio's `x-twilio-signature`: base64 HMAC-SHA1 of the URL followed by the form's
/// parameters, sorted, each name then value.
pub fn twilio_signature(url: &str, form: &str) -> String {
    let mut params: Vec<(String, String)> = url::form_urlencoded::parse(form.as_bytes())
        .into_owned()
        .collect();
    params.sort();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(TWILIO_TOKEN.as_bytes()).expect("any key");
    mac.update(url.as_bytes());
    for (k, v) in params {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    STANDARD.encode(mac.finalize().into_bytes())
}

/// LINE's `x-line-signature`: base64 HMAC-SHA256 of the body.
pub fn line_signature(body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(LINE_SECRET.as_bytes()).expect("any key");
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Viber's `x-viber-content-signature`: hex HMAC-SHA256 of the body.
pub fn viber_signature(body: &[u8]) -> String {
    sign(VIBER_TOKEN, body)
        .trim_start_matches("sha256=")
        .to_owned()
}
