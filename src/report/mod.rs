//! The HTML report (`logward report`, `scan --report FILE`): one self-contained page that
//! security staff and customers can open from disk or an e-mail attachment.
//!
//! [`Tally`] counts what the page needs beyond a scan's own counts, as a scan visitor in
//! the same pass; [`render`] turns a finished pass, its flags and the tally into the page
//! ([`html`]), with charts drawn by `svg`. Nothing here reads options or files: the
//! binary runs the pass and writes the page where it was asked to.

pub mod html;
pub(crate) mod svg;
pub mod tally;

pub use html::{Page, render};
pub use tally::{TOP, Tally};
