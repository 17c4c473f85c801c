//! Integration tests: a real broker in-process, the Connect worker and its REST API.
