//! The comparator's one sort.

/// Sorts by form, then by index. Every sort of the comparator (canonical
/// forms of JSON values, object keys, media type parameters) goes through
/// this one function: one instantiation of the sort keeps the module small.
#[inline(never)]
pub(super) fn sort_forms(forms: &mut [(Vec<u8>, usize)]) {
    forms.sort_unstable();
}
