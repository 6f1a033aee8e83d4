//! Filling a type's channel template with the intent's identifiers.
//!
//! The templates and their rules are settings (`config::channels`), checked
//! when the settings load; here they meet a message's values.

use super::fields::Ident;
use super::IntentError;
use crate::config::channels::{render, TemplateError, TemplateKind};
use crate::config::ChannelTemplates;

impl From<TemplateError> for IntentError {
    fn from(err: TemplateError) -> Self {
        IntentError::Template {
            template: err.template,
            detail: err.detail,
        }
    }
}

/// Renders one kind's channel from the given identifiers.
pub(super) fn render_channel(
    templates: &ChannelTemplates,
    kind: TemplateKind,
    idents: &[(&str, &Ident<'_>)],
) -> Result<String, IntentError> {
    let values: Vec<(&str, &str)> = idents.iter().map(|(n, i)| (*n, &*i.text)).collect();
    Ok(render(templates.get(kind), kind, &values)?)
}
