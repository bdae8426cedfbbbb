//! berth: the docker-style CLI, a client of the Docker Engine API.
//!
//! Empty until its issue lands (see ARCHITECTURE.md).
