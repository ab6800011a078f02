//! Property tests: no input makes the validating constructors panic, and
//! what they accept satisfies their documented invariants.

use crm_core::{
    AccountId, ApiKeyToken, Contact, ContactSearch, Email, NewContact, NewTemplate, PageRequest, Phone, Tag, Template,
    Variables, render_lenient, render_strict,
};
use proptest::prelude::*;

fn vars() -> impl Strategy<Value = Variables> {
    proptest::collection::btree_map("[a-z0-9_.]{1,8}", ".{0,16}", 0..6)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn phone_parse_never_panics_and_is_e164(s in ".{0,40}") {
        if let Ok(p) = Phone::parse(&s) {
            let digits = p.digits();
            prop_assert!(p.as_str().starts_with('+'));
            prop_assert!((8..=15).contains(&digits.len()));
            prop_assert!(digits.bytes().all(|b| b.is_ascii_digit()));
            prop_assert!(!digits.starts_with('0'));
            // Canonical: parsing the canonical form gives the same phone.
            prop_assert_eq!(Phone::parse(p.as_str()).unwrap(), p.clone());
            if let Some(legacy) = p.whatsapp_legacy_form() {
                prop_assert_eq!(Phone::parse(&legacy).unwrap(), p);
            }
        }
    }

    #[test]
    fn phone_digit_strings(s in "[+]?[0-9 ()-]{0,24}", cc in "[0-9]{0,4}") {
        let _ = Phone::parse(&s);
        let _ = Phone::parse_with_default_country(&s, &cc);
    }

    #[test]
    fn brazilian_mobiles_have_one_form(ddd in 11u32..=99, rest in 60_000_000u32..=99_999_999) {
        prop_assume!(ddd % 10 != 0);
        let with = Phone::parse(&format!("+55{ddd}9{rest}")).unwrap();
        let without = Phone::parse(&format!("55{ddd}{rest}")).unwrap();
        prop_assert_eq!(with, without);
    }

    #[test]
    fn email_tag_search_never_panic(s in ".{0,80}") {
        if let Ok(e) = Email::parse(&s) {
            prop_assert_eq!(e.as_str(), e.as_str().to_lowercase());
        }
        if let Ok(t) = Tag::parse(&s) {
            prop_assert!(!t.as_str().contains(','));
        }
        let _ = ContactSearch::parse(&s);
        let _ = PageRequest::new(Some(&s), 10);
        let _ = ApiKeyToken::prefix_of(&s);
    }

    #[test]
    fn rendering_never_panics(body in "(.{0,6}|\\{\\{|\\}\\}|\\{\\{ ?[a-z]{1,3} ?\\}\\}){0,12}", vars in vars()) {
        let lenient = render_lenient(&body, &vars, 64);
        if let Ok(strict) = render_strict(&body, &vars, 64) {
            // When every placeholder has a value both modes agree.
            prop_assert_eq!(Some(strict), lenient.ok());
        } else if let Ok(l) = lenient {
            prop_assert!(l.chars().count() <= 64);
        }
        let _ = Template::new(AccountId::new(), NewTemplate { name: "t".into(), body, ..Default::default() }, chrono::Utc::now());
    }

    #[test]
    fn contact_from_arbitrary_json_never_panics(json in any_json()) {
        if let Ok(input) = serde_json::from_value::<NewContact>(json) {
            let _ = Contact::new(AccountId::new(), input, chrono::Utc::now());
        }
    }
}

fn any_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{Value, json};
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        ".{0,20}".prop_map(Value::String),
        "[+0-9 ]{0,16}".prop_map(Value::String),
    ];
    let value = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    let field = prop_oneof![
        Just("name"),
        Just("phone"),
        Just("email"),
        Just("whatsapp_id"),
        Just("tags"),
        Just("metadata"),
        Just("lead_score"),
        Just("lead_stage"),
        Just("opt_in"),
        Just("opt_in_source")
    ];
    proptest::collection::btree_map(field, value, 0..10)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}
