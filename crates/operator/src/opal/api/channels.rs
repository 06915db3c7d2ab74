use crate::opal::call::{ApiPath, Call, HttpMethod};
use crate::opal::client::Client;
use crate::opal::error::OpalError;
use crate::opal::model::{Bundle, CreateMessageChannel, MessageChannel, MessageChannelList};
use crate::opal::pagination::{BundlePage, PageParams, Pager};

impl Client {
    /// Every message channel (`GET /message-channels`, unpaginated).
    pub async fn list_message_channels(&self) -> Result<Vec<MessageChannel>, OpalError> {
        let call = Call::get("message_channels.list", ApiPath::new(["message-channels"]));
        Ok(self.fetch::<MessageChannelList>(&call).await?.channels)
    }

    /// One message channel (`GET /message-channels/{id}`).
    pub async fn message_channel(
        &self,
        message_channel_id: &str,
    ) -> Result<MessageChannel, OpalError> {
        self.fetch(&Call::get(
            "message_channels.get",
            ApiPath::new(["message-channels", message_channel_id]),
        ))
        .await
    }

    /// Registers a chat channel with Opal (`POST /message-channels`).
    pub async fn create_message_channel(
        &self,
        channel: &CreateMessageChannel,
    ) -> Result<MessageChannel, OpalError> {
        let call = Call::new(
            "message_channels.create",
            HttpMethod::Post,
            ApiPath::new(["message-channels"]),
        )
        .json_body(channel)?
        .not_replayable();
        self.fetch(&call).await
    }

    /// Bundles, page by page (`GET /bundles`); `name_contains` filters by name.
    pub fn bundles(&self, name_contains: Option<&str>) -> Pager<BundlePage> {
        let call = Call::get("bundles.list", ApiPath::new(["bundles"]))
            .query_opt("contains", name_contains);
        Pager::new(self, call, PageParams::page_size(self.page_size()))
    }

    /// Every bundle.
    pub async fn list_bundles(&self) -> Result<Vec<Bundle>, OpalError> {
        self.bundles(None).collect_all().await
    }
}
