//! placeholder
/// x
pub struct ResourceQuotaController;
impl ResourceQuotaController {
    /// x
    pub fn new(_c: kube::Client, _s: &crate::Settings) -> Self { Self }
    /// x
    pub async fn run(self) {}
}
