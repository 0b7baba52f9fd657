//! Process-wide memory settings for the programs that run the server.

/// Turns transparent huge pages off for this process. The allocator marks its arenas for
/// huge pages, so memory it gives back to the kernel and then uses again is faulted in
/// 2 MiB at a time, each fault zeroing the whole page: under a steady stream of writes that
/// zeroing took about a tenth of the server's CPU. Databases commonly run without
/// transparent huge pages for the same reason. A kernel without the setting is ignored.
pub fn disable_transparent_huge_pages() {
    if let Err(err) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!(error = %err, "transparent huge pages stay enabled");
    }
}
