//! `application/x-www-form-urlencoded` bodies the way Stripe reads them:
//! nested keys in brackets (`line_items[0][price]`), arrays indexed
//! (`payment_method_types[0]`), keys' brackets left as they are, every
//! other byte outside `A-Z a-z 0-9 - . _ ~` percent-encoded (UTF-8).

use std::fmt::Write as _;

/// A form body: ordered `key=value` pairs.
///
/// ```
/// use crm_billing::form::Form;
/// let mut form = Form::new();
/// form.push("mode", "subscription")
///     .push("line_items[0][price]", "price_123")
///     .push("line_items[0][quantity]", 2)
///     .list("payment_method_types", &["card", "pix"])
///     .push("success_url", "https://app.example/ok?s={CHECKOUT_SESSION_ID}");
/// assert_eq!(
///     form.encode(),
///     "mode=subscription&line_items[0][price]=price_123&line_items[0][quantity]=2\
///      &payment_method_types[0]=card&payment_method_types[1]=pix\
///      &success_url=https%3A%2F%2Fapp.example%2Fok%3Fs%3D%7BCHECKOUT_SESSION_ID%7D"
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// An empty form.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key=value`.
    pub fn push(&mut self, key: impl Into<String>, value: impl ToString) -> &mut Self {
        self.pairs.push((key.into(), value.to_string()));
        self
    }

    /// Adds `key[0]=v0&key[1]=v1…`.
    pub fn list(&mut self, key: &str, values: &[&str]) -> &mut Self {
        for (i, v) in values.iter().enumerate() {
            self.push(format!("{key}[{i}]"), v);
        }
        self
    }

    /// Adds a JSON value under `key`, flattened: objects as `key[field]`,
    /// arrays as `key[i]`, strings, numbers and booleans as text, nulls as
    /// an empty value (Stripe's way to unset a field).
    pub fn json(&mut self, key: &str, value: &serde_json::Value) -> &mut Self {
        use serde_json::Value as V;
        match value {
            V::Object(map) => {
                for (k, v) in map {
                    self.json(&format!("{key}[{k}]"), v);
                }
            }
            V::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    self.json(&format!("{key}[{i}]"), v);
                }
            }
            V::String(s) => {
                self.push(key, s);
            }
            V::Null => {
                self.push(key, "");
            }
            other => {
                self.push(key, other);
            }
        }
        self
    }

    /// The pairs, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The encoded body.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for (i, (k, v)) in self.pairs.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            escape(&mut out, k, true);
            out.push('=');
            escape(&mut out, v, false);
        }
        out
    }
}

fn escape(out: &mut String, s: &str, key: bool) {
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (key && (b == b'[' || b == b']'));
        if keep {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Decodes a form body into its pairs (the inverse of [`Form::encode`];
/// `+` is a space). Used by tests and mocks to read what was sent.
pub fn decode(body: &str) -> Vec<(String, String)> {
    fn unescape(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                    match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        Some(b) => {
                            out.push(b);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (unescape(k), unescape(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_values_and_keeps_key_brackets() {
        let mut f = Form::new();
        f.push("metadata[name]", "Loja da Ana & Filhos").push("x", "ção=1+2/3").push("empty", "");
        assert_eq!(f.encode(), "metadata[name]=Loja%20da%20Ana%20%26%20Filhos&x=%C3%A7%C3%A3o%3D1%2B2%2F3&empty=");
        assert_eq!(decode(&f.encode()), f.pairs());
    }

    #[test]
    fn flattens_nested_json() {
        let mut f = Form::new();
        f.json(
            "subscription_data",
            &json!({ "metadata": { "account_id": "a1" }, "items": [{ "price": "p", "quantity": 3 }], "trial": null, "x": true }),
        );
        // Sorted: object field order is serde_json's (sorted, or insertion with preserve_order).
        let mut got: Vec<(String, String)> = f.pairs().to_vec();
        got.sort();
        let want = [
            ("subscription_data[items][0][price]", "p"),
            ("subscription_data[items][0][quantity]", "3"),
            ("subscription_data[metadata][account_id]", "a1"),
            ("subscription_data[trial]", ""),
            ("subscription_data[x]", "true"),
        ];
        assert_eq!(got, want.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<Vec<_>>());
    }

    #[test]
    fn decode_handles_plus_and_bad_escapes() {
        assert_eq!(
            decode("a=b+c&d=%zz&e"),
            vec![("a".into(), "b c".into()), ("d".into(), "%zz".into()), ("e".into(), String::new())]
        );
        assert_eq!(decode("k=%4"), vec![("k".into(), "%4".into())]);
    }
}
