//! A resource: one path shape (e.g. `/pets/{}`) and the routes on it, one per
//! method, plus an optional `ANY` route, with its `Allow` list precomputed.

/// Order of the well-known methods in an `Allow` list; others follow sorted.
const ORDER: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The method name that matches every method without a route of its own.
pub const ANY: &str = "ANY";

#[derive(Debug, Default)]
pub(crate) struct Resource {
    /// (method, route), in `Allow` order.
    methods: Vec<(Box<[u8]>, u32)>,
    any: Option<u32>,
    allow: Box<str>,
}

/// Which method of a resource answers a request.
pub(crate) enum Choice<'a> {
    Route(u32),
    NotAllowed(&'a str),
}

impl Resource {
    /// Registers `route` for `method`; on a clash returns the route already there.
    pub fn add(&mut self, method: &str, route: u32) -> Result<(), u32> {
        if method == ANY {
            if let Some(old) = self.any {
                return Err(old);
            }
            self.any = Some(route);
            return Ok(());
        }
        if let Some(&(_, old)) = self.methods.iter().find(|(m, _)| **m == *method.as_bytes()) {
            return Err(old);
        }
        self.methods.push((method.as_bytes().into(), route));
        Ok(())
    }

    /// Sorts the methods and renders the `Allow` list; call once, after the
    /// last `add`.
    pub fn seal(&mut self) {
        let rank = |m: &[u8]| {
            ORDER
                .iter()
                .position(|o| o.as_bytes() == m)
                .unwrap_or(ORDER.len())
        };
        self.methods
            .sort_by(|(a, _), (b, _)| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
        let names: Vec<&str> = self
            .methods
            .iter()
            .map(|(m, _)| std::str::from_utf8(m).unwrap_or("?"))
            .collect();
        self.allow = names.join(", ").into();
    }

    pub fn choose(&self, method: &[u8]) -> Choice<'_> {
        for (m, route) in &self.methods {
            if crate::percent::bytes_eq(m, method) {
                return Choice::Route(*route);
            }
        }
        match self.any {
            Some(route) => Choice::Route(route),
            None => Choice::NotAllowed(&self.allow),
        }
    }

    /// (method, route) in precedence order, `ANY` last.
    pub fn routes(&self) -> impl Iterator<Item = (&str, u32)> {
        let own = self
            .methods
            .iter()
            .map(|(m, r)| (std::str::from_utf8(m).unwrap_or("?"), *r));
        own.chain(self.any.map(|r| (ANY, r)))
    }
}

/// Checks a configured method name: an HTTP token (RFC 9110 §5.6.2).
pub(crate) fn check_method(name: &str) -> Result<(), String> {
    let is_tchar = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(format!("method {name:?} is not an HTTP token"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_in_canonical_order() {
        let mut r = Resource::default();
        for (i, m) in ["PURGE", "DELETE", "GET", "OPTIONS", "POST"]
            .iter()
            .enumerate()
        {
            r.add(m, i as u32).unwrap();
        }
        assert_eq!(r.add("GET", 9), Err(2));
        r.seal();
        assert!(matches!(
            r.choose(b"PUT"),
            Choice::NotAllowed("GET, POST, DELETE, OPTIONS, PURGE")
        ));
        assert!(matches!(r.choose(b"GET"), Choice::Route(2)));
        assert!(matches!(r.choose(b"get"), Choice::NotAllowed(_)));
        r.add(ANY, 7).unwrap();
        assert_eq!(r.add(ANY, 8), Err(7));
        assert!(matches!(r.choose(b"get"), Choice::Route(7)));
        assert!(matches!(r.choose(b"DELETE"), Choice::Route(1)));
    }

    #[test]
    fn method_tokens() {
        assert!(check_method("GET").is_ok());
        assert!(check_method("M-SEARCH").is_ok());
        assert!(check_method("").is_err());
        assert!(check_method("GE T").is_err());
        assert!(check_method("GET\r").is_err());
    }
}
