//! The `x-ringway-*` keys `ringway export-openapi` writes for what API
//! Gateway has no word for, read back onto a route (and the document's
//! `x-ringway-gateway-responses`).

use super::import::Importer;
use super::tree::Node;
use crate::config::model;
use crate::config::units::{Dur, Size};
use std::collections::BTreeMap;
use toml::Spanned;

impl<'a> Importer<'a> {
    /// An operation's `x-ringway-*` keys onto its route.
    pub fn ringway_keys(&mut self, op: &'a Node, route: &mut model::Route) {
        if let Some(n) = op.get("x-ringway-upstream") {
            route.upstream = self.string(n);
            route.uri = None;
        }
        if let Some(n) = op.get("x-ringway-host") {
            route.host = self.string(n);
        }
        if let Some(b) = op.get("x-ringway-preserve-host").and_then(|n| self.bool(n)) {
            route.preserve_host = b;
        }
        if let Some(b) = op.get("x-ringway-websocket").and_then(|n| self.bool(n)) {
            route.websocket = b;
        }
        if let Some(n) = op.get("x-ringway-disable") {
            route.disable = self.strings(n);
        }
        if let Some(n) = op.get("x-ringway-throttle") {
            route.throttle = self.throttle(n);
        }
        if let Some(n) = op.get("x-ringway-cors") {
            route.cors = self.cors(n);
        }
        if let Some(n) = op.get("x-ringway-ip") {
            let ip = model::IpPolicy {
                allow: n.get("allow").map(|l| self.strings(l)).unwrap_or_default(),
                deny: n.get("deny").map(|l| self.strings(l)).unwrap_or_default(),
            };
            route.ip = Some(self.spanned(n, ip));
        }
        if let Some(n) = op.get("x-ringway-mapping-response") {
            let map = self.string_map(n);
            let m = route.mapping.get_or_insert_with(|| {
                Spanned::new(
                    n.span.start + self.off..n.span.end + self.off,
                    model::Mapping {
                        request: None,
                        response: None,
                    },
                )
            });
            m.get_mut().response = Some(Spanned::new(
                n.span.start + self.off..n.span.end + self.off,
                map,
            ));
        }
        if let Some(n) = op.get("x-ringway-mock")
            && let Some(m) = &mut route.mock
        {
            let m = m.get_mut();
            if let Some(s) = n.get("status")
                && let Some(v) = self.number(s)
            {
                m.status = self.spanned(s, v as u16);
            }
            m.headers = match n.get("headers") {
                Some(h) if h.is_map() => {
                    let map = self.string_map(h);
                    Some(self.spanned(h, map))
                }
                _ => None,
            };
            m.body = n.get("body").and_then(Node::as_str).map(str::to_string);
        }
        if let Some(n) = op.get("x-ringway-validate") {
            self.validate_extra(n, route);
        }
        if let Some(n) = op.get("x-ringway-jwt")
            && let Some(j) = &mut route.jwt
        {
            self.jwt_extra(n, j.get_mut());
        }
    }

    fn string(&mut self, n: &Node) -> Option<Spanned<String>> {
        match n.as_str() {
            Some(s) => Some(self.spanned(n, s.to_string())),
            None => {
                self.error(n, format!("expected a string, found {}", n.kind()));
                None
            }
        }
    }

    fn bool(&mut self, n: &Node) -> Option<bool> {
        let b = n.as_bool();
        if b.is_none() {
            self.error(n, format!("expected true or false, found {}", n.kind()));
        }
        b
    }

    fn strings(&mut self, n: &Node) -> Vec<Spanned<String>> {
        n.items().iter().filter_map(|i| self.string(i)).collect()
    }

    fn string_map(&mut self, n: &Node) -> BTreeMap<String, String> {
        n.entries()
            .iter()
            .filter_map(|e| Some((e.key.clone(), self.string(&e.node)?.into_inner())))
            .collect()
    }

    fn number(&mut self, n: &Node) -> Option<f64> {
        let v = n.as_f64();
        if v.is_none() {
            self.error(n, format!("expected a number, found {}", n.kind()));
        }
        v
    }

    fn duration(&mut self, n: &Node) -> Option<Dur> {
        let text = n.as_str()?;
        match humantime::parse_duration(text) {
            Ok(d) => Some(Dur(d)),
            Err(e) => {
                self.error(n, format!("invalid duration {text:?}: {e}"));
                None
            }
        }
    }

    fn throttle(&mut self, n: &Node) -> Option<Spanned<model::Throttle>> {
        let rate = n.get("rate")?;
        let r = self.number(rate)?;
        let burst = match n.get("burst") {
            Some(b) => {
                let v = self.number(b)?;
                Some(self.spanned(b, v))
            }
            None => None,
        };
        let t = model::Throttle {
            rate: self.spanned(rate, r),
            burst,
            key: n.get("key").and_then(|k| self.string(k)),
        };
        Some(self.spanned(n, t))
    }

    fn validate_extra(&mut self, n: &Node, route: &mut model::Route) {
        let span = self.span(n);
        let v = route
            .validate
            .get_or_insert_with(|| Spanned::new(span, model::Validate::default()));
        let v = v.get_mut();
        if let Some(m) = n.get("max_body_bytes").and_then(Node::as_f64) {
            v.max_body_bytes = Some(Size(m as u64));
        }
        if let Some(m) = n.get("json_max_bytes")
            && let Some(b) = m.as_f64()
        {
            v.json_max_bytes = Some(Spanned::new(
                m.span.start + self.off..m.span.end + self.off,
                Size(b as u64),
            ));
        }
        if let Some(c) = n.get("content_types") {
            v.content_types = self.strings(c);
        }
    }

    fn jwt_extra(&mut self, n: &Node, j: &mut model::Jwt) {
        if let Some(u) = n.get("jwks_url") {
            j.jwks_url = self.string(u);
        }
        if let Some(f) = n.get("jwks_file") {
            j.jwks_file = self.string(f);
            if n.get("jwks_url").is_none() {
                j.jwks_url = None;
            }
        }
        if let Some(f) = n.get("jwks_ca") {
            j.jwks_ca = self.string(f);
        }
        if let Some(r) = n.get("jwks_refresh")
            && let Some(d) = self.duration(r)
        {
            j.jwks_refresh = Some(self.spanned(r, d));
        }
        if let Some(c) = n.get("forward_claims") {
            let map = self.string_map(c);
            j.forward_claims = Some(self.spanned(c, map));
        }
        if let Some(l) = n.get("leeway") {
            j.leeway = self.duration(l);
        }
        if let Some(c) = n.get("cache").and_then(|c| self.bool(c)) {
            j.cache = c;
        }
        if n.get("no_issuer").and_then(Node::as_bool) == Some(true) {
            j.issuer = None;
        }
    }
}
