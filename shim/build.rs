//! Links `berth-shim` as a position-dependent executable.
//!
//! One shim runs per pod, so its private memory is multiplied by the number of pods. A
//! PIE's relocated read-only data (`.data.rel.ro`: vtables, protobuf descriptors, about
//! 400 KiB here) is written by the dynamic loader at every start and becomes private
//! dirty memory in each shim; linked without PIE, the addresses are fixed at link time
//! and those pages stay clean file pages shared by all shims. The cost is that the
//! shim's own code is not randomized (ASLR still applies to its stack, heap and
//! libraries).
fn main() {
    println!("cargo:rustc-link-arg-bin=berth-shim=-no-pie");
}
