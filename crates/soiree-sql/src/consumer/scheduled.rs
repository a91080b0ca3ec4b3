//! Moving due delayed events into the log before claiming (see
//! [`crate::scheduled`]), as often as the retry table is looked at.

use std::time::Duration;

use tokio::time::Instant;

use super::ClaimState;
use crate::Result;
use crate::backend::Backend;
use crate::core::Core;

impl<B: Backend> Core<B> {
    /// Moves due delayed events into the log when it is time to look.
    pub(super) async fn move_scheduled(&self, claim: &mut ClaimState) -> Result<()> {
        if Instant::now() < claim.next_scheduled {
            return Ok(());
        }
        claim.next_scheduled = Instant::now()
            + self
                .options
                .poll_interval
                .clamp(Duration::from_millis(10), Duration::from_secs(1));
        self.move_due().await?;
        Ok(())
    }
}
