//! A check that an XML text (as `malloc_info` writes) is well nested:
//! every tag that opens closes, in order.

/// Panics unless every tag of `xml` that opens closes, in order
/// (`<a/>` closes itself).
pub fn assert_well_nested(xml: &str) {
    let mut open = Vec::new();
    for tag in xml.split('<').skip(1) {
        let tag = &tag[..tag.find('>').expect("unclosed <")];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(open.pop(), Some(name), "</{name}> closes nothing:\n{xml}");
        } else if !tag.ends_with('/') {
            open.push(tag.split(' ').next().unwrap());
        }
    }
    assert!(open.is_empty(), "{open:?} left open:\n{xml}");
}
