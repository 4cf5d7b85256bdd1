//! MaxMind lookups (placeholder replaced in the next commit).
