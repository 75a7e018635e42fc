//! CSV export: one header line, then one line per Contact, written batch by batch.
use chrono::SecondsFormat;
use ism_platform::convert::from_timestamp;
use ism_platform::spreadsheet::neutralised;
use ism_proto::contacts::v1::{self as pb, field_value::Kind};

use crate::profile::Profile;

/// The default columns after `id` and the profile's ([`Profile::FIELDS`]), before the
/// custom field keys.
const OTHER_COLUMNS: [&str; 6] = [
    "blocked",
    "broadcast_opt_out",
    "lifecycle_stage",
    "created_at",
    "last_interaction_at",
    "tags",
];

/// Writes Contacts as CSV with the default columns, `tags`, then `custom_keys`.
pub struct Exporter {
    custom_keys: Vec<String>,
}

fn time(ts: &Option<prost_types::Timestamp>) -> String {
    ts.as_ref()
        .and_then(from_timestamp)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true))
        .unwrap_or_default()
}

/// The CSV cell of a custom value; import reads the same forms back.
pub fn cell(value: &pb::FieldValue) -> String {
    match &value.kind {
        Some(Kind::Text(t)) | Some(Kind::Date(t)) => t.clone(),
        Some(Kind::Number(n)) => n.to_string(),
        Some(Kind::Checkbox(b)) => b.to_string(),
        Some(Kind::Datetime(ts)) => time(&Some(*ts)),
        None => String::new(),
    }
}

impl Exporter {
    pub fn new(mut custom_keys: Vec<String>) -> Self {
        custom_keys.sort();
        Exporter { custom_keys }
    }

    /// The header line (when `header`) and one line per Contact.
    pub fn chunk(&self, contacts: &[pb::Contact], header: bool) -> Vec<u8> {
        let mut out = csv::Writer::from_writer(Vec::new());
        let mut write = |record: Vec<String>| {
            // Writing to memory fails only on an allocation failure.
            let _ = out.write_record(record.iter().map(|cell| neutralised(cell).into_owned()));
        };
        if header {
            let defaults = std::iter::once("id")
                .chain(Profile::FIELDS)
                .chain(OTHER_COLUMNS);
            let mut names: Vec<String> = defaults.map(str::to_owned).collect();
            names.extend(self.custom_keys.iter().cloned());
            write(names);
        }
        for c in contacts {
            let mut record = vec![
                c.id.clone(),
                c.first_name.clone(),
                c.last_name.clone(),
                c.email.clone(),
                c.phone.clone(),
                c.language.clone(),
                c.country.clone(),
                c.timezone.clone(),
                c.picture_url.clone(),
                c.blocked.to_string(),
                c.broadcast_opt_out.to_string(),
                c.lifecycle_stage.clone(),
                time(&c.created_at),
                time(&c.last_interaction_at),
                c.tags.join(";"),
            ];
            record.extend(
                self.custom_keys
                    .iter()
                    .map(|k| c.custom_fields.get(k).map(cell).unwrap_or_default()),
            );
            write(record);
        }
        out.into_inner().unwrap_or_default()
    }
}
