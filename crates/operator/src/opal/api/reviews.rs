use crate::opal::call::{ApiPath, Call, HttpMethod};
use crate::opal::client::Client;
use crate::opal::error::OpalError;
use crate::opal::model::{CreateUar, Uar};
use crate::opal::pagination::{CursorPage, PageParams, Pager};

impl Client {
    /// Starts an access review (`POST /uar`). Not retried after ambiguous failures, so a lost
    /// response never starts two campaigns.
    pub async fn create_uar(&self, uar: &CreateUar) -> Result<Uar, OpalError> {
        let call = Call::new("uars.create", HttpMethod::Post, ApiPath::new(["uar"]))
            .json_body(uar)?
            .not_replayable();
        self.fetch(&call).await
    }

    /// Access reviews, page by page (`GET /uars`).
    pub fn uars(&self) -> Pager<CursorPage<Uar>> {
        let call = Call::get("uars.list", ApiPath::new(["uars"]));
        Pager::new(self, call, PageParams::page_size(self.page_size()))
    }

    /// Every access review.
    pub async fn list_uars(&self) -> Result<Vec<Uar>, OpalError> {
        self.uars().collect_all().await
    }

    /// One access review (`GET /uar/{uar_id}`).
    pub async fn uar(&self, uar_id: &str) -> Result<Uar, OpalError> {
        self.fetch(&Call::get("uars.get", ApiPath::new(["uar", uar_id])))
            .await
    }
}
