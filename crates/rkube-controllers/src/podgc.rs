//! placeholder
/// x
pub struct PodGcController;
impl PodGcController {
    /// x
    pub fn new(_c: kube::Client, _s: &crate::Settings) -> Self { Self }
    /// x
    pub async fn run(self) {}
}
