//! Inputs as sequences of operations, shared by the page heap's and the
//! central layer's fuzz interpreters (included with `#[path]`, like
//! `os.rs`): each crate's `Op` says how one operation reads and writes its
//! bytes; a sequence is those bytes back to back.

/// One operation's byte form.
pub trait Codec: Sized {
    /// The operation at the start of `data` and the bytes it used, or
    /// `None` when `data` holds no whole operation.
    fn decode(data: &[u8]) -> Option<(Self, usize)>;
    /// The operation's bytes.
    fn encode(&self) -> Vec<u8>;
}

/// The operations `data` stands for, at most `max_ops`.
pub fn decode_all<T: Codec>(mut data: &[u8], max_ops: usize) -> Vec<T> {
    let mut ops = Vec::new();
    while ops.len() < max_ops {
        let Some((op, used)) = T::decode(data) else {
            break;
        };
        ops.push(op);
        data = &data[used..];
    }
    ops
}

/// The bytes of a sequence of operations.
pub fn encode_all<T: Codec>(ops: &[T]) -> Vec<u8> {
    ops.iter().flat_map(T::encode).collect()
}
