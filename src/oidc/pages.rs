//! The hosted pages (sign-in, sign-up, consent, sign-out, errors): HTML templates built into the
//! binary, each replaceable by a file of the same name in `GATEHOUSE_OIDC_TEMPLATES`.
//!
//! The template language is the smallest useful part of Mustache: `{{name}}` (HTML-escaped),
//! `{{{name}}}` (raw; only the style sheet is passed this way), and sections `{{#name}}…{{/name}}`
//! shown when `name` is not empty. Pages work without JavaScript.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// The pages, by file name.
pub const PAGES: [(&str, &str); 7] = [
    ("sign-in.html", include_str!("templates/sign-in.html")),
    ("sign-up.html", include_str!("templates/sign-up.html")),
    ("consent.html", include_str!("templates/consent.html")),
    ("sign-out.html", include_str!("templates/sign-out.html")),
    ("signed-out.html", include_str!("templates/signed-out.html")),
    ("error.html", include_str!("templates/error.html")),
    ("style.css", include_str!("templates/style.css")),
];

#[derive(Clone, Debug)]
pub struct Templates(Arc<HashMap<&'static str, String>>);

impl Default for Templates {
    fn default() -> Self {
        Templates(Arc::new(PAGES.iter().map(|(name, text)| (*name, (*text).to_owned())).collect()))
    }
}

impl Templates {
    /// The built-in pages, with any file of the same name in `dir` in their place. A template
    /// that would not render (an unclosed section) is refused here, at start-up.
    pub fn load(dir: Option<&Path>) -> Result<Templates, String> {
        let mut pages = HashMap::new();
        for (name, builtin) in PAGES {
            let text = match dir.map(|d| d.join(name)) {
                Some(path) if path.exists() => {
                    std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?
                }
                _ => builtin.to_owned(),
            };
            check(&text).map_err(|e| format!("{name}: {e}"))?;
            pages.insert(name, text);
        }
        Ok(Templates(Arc::new(pages)))
    }

    /// Renders page `name` with `values`; the style sheet is available as `{{{style}}}`.
    pub fn render(&self, name: &str, values: &[(&str, &str)]) -> String {
        let style = self.0.get("style.css").map_or("", String::as_str);
        let template = self.0.get(name).map_or("", String::as_str);
        let mut all: Vec<(&str, &str)> = values.to_vec();
        all.push(("style", style));
        render(template, &all)
    }
}

/// Finds problems `render` would silently paper over.
fn check(template: &str) -> Result<(), String> {
    let mut open: Vec<&str> = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { return Err("a {{ without }}".into()) };
        let tag = after[..end].trim_start_matches('{');
        if let Some(name) = tag.strip_prefix('#') {
            open.push(name);
        } else if let Some(name) = tag.strip_prefix('/')
            && open.pop() != Some(name)
        {
            return Err(format!("{{{{/{name}}}}} closes no open section"));
        }
        rest = &after[end + 2..];
    }
    match open.pop() {
        Some(name) => Err(format!("section {name} is never closed")),
        None => Ok(()),
    }
}

fn lookup<'v>(values: &[(&str, &'v str)], key: &str) -> &'v str {
    values.iter().find(|(k, _)| *k == key).map_or("", |(_, v)| v)
}

fn render(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let (tag, raw, len) = if let Some(inner) = after.strip_prefix("{{{") {
            match inner.find("}}}") {
                Some(end) => (&inner[..end], true, end + 6),
                None => break,
            }
        } else {
            match after[2..].find("}}") {
                Some(end) => (&after[2..2 + end], false, end + 4),
                None => break,
            }
        };
        rest = &after[len..];
        if let Some(name) = tag.strip_prefix('#') {
            let close = format!("{{{{/{name}}}}}");
            let Some(end) = rest.find(&close) else { break };
            if !lookup(values, name).is_empty() {
                out.push_str(&render(&rest[..end], values));
            }
            rest = &rest[end + close.len()..];
        } else if raw {
            out.push_str(lookup(values, tag.trim()));
        } else {
            escape_into(&mut out, lookup(values, tag.trim()));
        }
    }
    out.push_str(rest);
    out
}

/// HTML escaping for text and double-quoted attribute values.
pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_sections_follow_their_value() {
        let values = [("name", "<b>\"x\" & 'y'</b>"), ("shown", "yes")];
        let out = render("a {{name}} {{#shown}}[{{name}}]{{/shown}}{{#hidden}}never{{/hidden}} {{{shown}}}", &values);
        assert_eq!(
            out,
            "a &lt;b&gt;&quot;x&quot; &amp; &#x27;y&#x27;&lt;/b&gt; [&lt;b&gt;&quot;x&quot; &amp; &#x27;y&#x27;&lt;/b&gt;] yes"
        );
    }

    #[test]
    fn every_built_in_page_is_well_formed() {
        for (name, text) in PAGES {
            assert_eq!(check(text), Ok(()), "{name}");
        }
        assert!(check("{{#a}}x").is_err());
        assert!(check("{{/a}}").is_err());
        assert!(check("{{a").is_err());
    }

    #[test]
    fn a_template_directory_replaces_pages_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("error.html"), "<p>{{description}}</p>").unwrap();
        let templates = Templates::load(Some(dir.path())).unwrap();
        assert_eq!(templates.render("error.html", &[("description", "a & b")]), "<p>a &amp; b</p>");
        assert!(templates.render("sign-in.html", &[]).contains("<form method=\"post\""));
        std::fs::write(dir.path().join("consent.html"), "{{#open}}").unwrap();
        assert!(Templates::load(Some(dir.path())).unwrap_err().contains("consent.html"));
    }
}
