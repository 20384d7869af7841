//! API keys: `[[usage_plan]]`, `[[api_key]]` and `server.api_keys_file`.

use super::error::Collector;
use super::model;
use std::path::Path;

/// `[[usage_plan]]`, `[[api_key]]` and the keys of `server.api_keys_file`,
/// whose problems are reported against that file's own lines.
pub(super) fn compile_api_keys(
    file: &model::File,
    base: &Path,
    fleet: Option<&std::sync::Arc<crate::cluster::Fleet>>,
    c: &mut Collector<'_>,
) -> crate::policy::api_key::Keys {
    let keys_file = file.server.api_keys_file.as_ref().and_then(|name| {
        let path = base.join(name.get_ref());
        match std::fs::read_to_string(&path) {
            Ok(text) => Some((path, text)),
            Err(e) => {
                c.at(
                    name.span(),
                    "server.api_keys_file",
                    format!("cannot read {}: {e}", path.display()),
                );
                None
            }
        }
    });
    let mut kc = keys_file.as_ref().map(|(_, text)| Collector::new(text));
    let (extra, renumber) = match &mut kc {
        Some(kc) => super::read::read::<model::KeysFile>(kc).unzip(),
        None => (None, None),
    };
    let structural = kc.as_ref().map_or(0, |kc| kc.diagnostics.len());
    let mut sources: Vec<&[model::ApiKey]> = vec![&file.api_key];
    if let Some(extra) = &extra {
        sources.push(&extra.api_key);
    }
    let (keys, problems) = crate::policy::api_key::compile_keys(&file.usage_plan, &sources, fleet);
    for (src, p) in problems {
        match (src, &mut kc) {
            (1, Some(kc)) => kc.at(p.span, p.key, p.message),
            _ => c.at(p.span, p.key, p.message),
        }
    }
    if let (Some(kc), Some(renumber)) = (&mut kc, renumber) {
        renumber.apply(kc, structural);
    }
    if let (Some((path, _)), Some(kc)) = (&keys_file, kc) {
        c.absorb(path, kc);
    }
    keys
}
