//! Adam.
