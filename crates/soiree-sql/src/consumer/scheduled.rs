//! Moving due delayed events into the log before claiming (see
//! [`crate::scheduled`]), as often as the retry table is looked at, and
//! when the earliest delayed event falls due.

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
        self.move_due().await?;
        let poll = Instant::now()
            + self
                .options
                .poll_interval
                .clamp(Duration::from_millis(10), Duration::from_secs(1));
        claim.next_scheduled = self.next_due_at().map_or(poll, |due| due.min(poll));
        Ok(())
    }
}
