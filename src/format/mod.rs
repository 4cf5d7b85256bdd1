//! Log formats: the `Record` a line becomes, address parsing inside fields, and (as they
//! land) presets, `log_format`/`LogFormat` compilation, timestamps and the line parser.

pub mod addr;
pub mod record;

pub use record::{AddrField, AddrFields, AddrKind, Record, Span};
