#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;

fn pattern(text: &str) -> HostPattern {
    HostPattern::parse(text).unwrap()
}

fn hosts(list: &[&str]) -> Hosts {
    Hosts::parse(list).unwrap()
}

#[test]
fn patterns_are_exact_names_or_suffixes_lower_cased() {
    assert_eq!(pattern("API.Example.com"), HostPattern::Exact("api.example.com".into()));
    assert_eq!(
        pattern("api.example.com."),
        HostPattern::Exact("api.example.com".into())
    );
    assert_eq!(pattern("*.Example.com"), HostPattern::Suffix(".example.com".into()));
    assert_eq!(pattern("localhost"), HostPattern::Exact("localhost".into()));
    assert_eq!(pattern("[2001:DB8::1]"), HostPattern::Exact("[2001:db8::1]".into()));
    assert_eq!(pattern("*.example.com").to_string(), "*.example.com");
}

#[test]
fn bad_patterns_say_what_is_wrong() {
    for (text, needle) in [
        ("", "not a host name"),
        (".", "not a host name"),
        ("*", "not a host name"),
        ("*.", "not a host name"),
        ("a.*.example.com", "leading labels"),
        ("*example.com", "not a host name"),
        ("a..example.com", "not a host name"),
        (".example.com", "not a host name"),
        ("api example.com", "not a host name"),
        ("api.example.com:8080", "port"),
        ("*.example.com:443", "port"),
        ("[::1]:8080", "IPv6 literal"),
        ("[]", "IPv6 literal"),
        ("[::1", "IPv6 literal"),
        ("https://api.example.com", "not a host name"),
        ("api.example.com/v1", "not a host name"),
    ] {
        match HostPattern::parse(text) {
            Ok(p) => panic!("{text:?} accepted as {p:?}"),
            Err(msg) => assert!(msg.contains(needle), "{text:?}: {msg}"),
        }
    }
}

#[test]
fn a_pattern_is_bounded_in_length() {
    let label = "a".repeat(63);
    let longest = format!("{label}.{label}.{label}.{}", "b".repeat(MAX_HOST_BYTES - 3 * 64));
    assert_eq!(longest.len(), MAX_HOST_BYTES);
    assert!(HostPattern::parse(&longest).is_ok());
    let err = HostPattern::parse(&format!("{longest}b")).unwrap_err();
    assert!(err.contains("at most 254"), "{err}");
    assert!(!err.contains(&label), "quotes the long value: {err}");
}

#[test]
fn exact_names_match_case_insensitively() {
    let p = pattern("api.example.com");
    assert!(p.matches(b"api.example.com"));
    assert!(p.matches(b"API.EXAMPLE.COM"));
    assert!(!p.matches(b"api.example.co"));
    assert!(!p.matches(b"xapi.example.com"));
    assert!(!p.matches(b"a.api.example.com"));
    assert!(!p.matches(b""));
}

#[test]
fn a_suffix_matches_any_name_below_it_but_not_itself() {
    let p = pattern("*.example.com");
    assert!(p.matches(b"api.example.com"));
    assert!(p.matches(b"a.b.EXAMPLE.com"));
    assert!(!p.matches(b"example.com"));
    assert!(!p.matches(b".example.com"));
    assert!(!p.matches(b"badexample.com"));
    assert!(!p.matches(b"example.com.evil"));
}

#[test]
fn the_host_of_an_authority_drops_the_port_and_one_trailing_dot() {
    assert_eq!(host_of(b"api.example.com"), Some(&b"api.example.com"[..]));
    assert_eq!(host_of(b"api.example.com:8443"), Some(&b"api.example.com"[..]));
    assert_eq!(host_of(b"api.example.com.:80"), Some(&b"api.example.com"[..]));
    assert_eq!(host_of(b"[2001:db8::1]:443"), Some(&b"[2001:db8::1]"[..]));
    assert_eq!(host_of(b"[2001:db8::1]"), Some(&b"[2001:db8::1]"[..]));
    assert_eq!(host_of(b""), Some(&b""[..]));
    assert_eq!(host_of(b":80"), Some(&b""[..]));
}

#[test]
fn an_authority_longer_than_any_host_is_in_no_scope() {
    let list = hosts(&["*.example.com"]);
    let longest = format!("{}.example.com:65535", "a".repeat(MAX_AUTHORITY_BYTES - 18));
    assert_eq!(longest.len(), MAX_AUTHORITY_BYTES);
    assert!(list.matches_authority(longest.as_bytes()));
    let longer = format!("a{longest}");
    assert_eq!(host_of(longer.as_bytes()), None);
    assert!(!list.matches_authority(longer.as_bytes()));
}

#[test]
fn a_list_matches_when_one_entry_does() {
    let list = hosts(&["api.example.com", "*.api.example.net"]);
    assert!(list.matches_authority(b"api.example.com"));
    assert!(list.matches_authority(b"Api.Example.Com:443"));
    assert!(list.matches_authority(b"eu.api.example.net"));
    assert!(!list.matches_authority(b"api.example.net"));
    assert!(!list.matches_authority(b"www.example.com"));
    assert!(!list.matches_authority(b""));
}

#[test]
fn list_errors_name_the_entry() {
    assert_eq!(Hosts::parse::<&str>(&[]).unwrap_err().0, None);
    assert!(Hosts::parse::<&str>(&[]).unwrap_err().1.contains("leave \"hosts\" out"));
    let (index, msg) = Hosts::parse(&["a.example.com", "b example.com"]).unwrap_err();
    assert_eq!(index, Some(1));
    assert!(msg.contains("not a host name"), "{msg}");
    let (index, msg) = Hosts::parse(&["*.example.com", "a.example.com"]).unwrap_err();
    assert_eq!(index, Some(1));
    assert!(msg.contains("hosts[0]"), "{msg}");
    let (index, _) = Hosts::parse(&["a.example.com", "A.example.com."]).unwrap_err();
    assert_eq!(index, Some(1));
    let (index, _) = Hosts::parse(&["a.b.example.com", "*.example.com"]).unwrap_err();
    assert_eq!(index, Some(1));
    // Not overlapping: the bare domain is not below its own suffix.
    hosts(&["example.com", "*.example.com"]);
}

#[test]
fn a_list_is_bounded_in_entries() {
    let names: Vec<String> = (0..MAX_HOSTS).map(|i| format!("h{i}.example.com")).collect();
    assert!(Hosts::parse(&names).is_ok());
    let mut more = names.clone();
    more.push("one-more.example.com".into());
    let (index, msg) = Hosts::parse(&more).unwrap_err();
    assert_eq!(index, None);
    assert!(msg.contains("33 entries, at most 32"), "{msg}");
}

#[test]
fn overlap_between_lists() {
    let a = hosts(&["api.example.com"]);
    assert!(a.overlaps(&hosts(&["api.example.com"])));
    assert!(a.overlaps(&hosts(&["*.example.com"])));
    assert!(!a.overlaps(&hosts(&["*.api.example.com"])));
    assert!(!a.overlaps(&hosts(&["www.example.com"])));
    let wide = hosts(&["*.example.com"]);
    assert!(wide.overlaps(&hosts(&["*.eu.example.com"])));
    assert!(hosts(&["*.eu.example.com"]).overlaps(&wide));
    assert!(!wide.overlaps(&hosts(&["*.example.net", "example.com"])));
}

#[test]
fn coverage_of_one_list_by_another() {
    let outer = hosts(&["*.example.com", "api.example.net"]);
    assert_eq!(outer.first_uncovered(&hosts(&["a.example.com"])), None);
    assert_eq!(
        outer.first_uncovered(&hosts(&["*.eu.example.com", "api.example.net"])),
        None
    );
    assert_eq!(
        outer.first_uncovered(&hosts(&["a.example.com", "example.com"])),
        Some(1)
    );
    assert_eq!(outer.first_uncovered(&hosts(&["*.example.net"])), Some(0));
    assert_eq!(
        hosts(&["api.example.com"]).first_uncovered(&hosts(&["*.example.com"])),
        Some(0)
    );
}
