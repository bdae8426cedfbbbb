//! `RuntimeService`: each RPC forwards to the module that implements it.

mod events;
mod metrics;
mod pod_net;
mod pod_stats;
mod runtime_config;
mod status;
mod version;

use std::pin::Pin;

use futures_util::Stream;
use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_server::RuntimeService;
use tonic::{Request, Response, Status};

use crate::containers;
use crate::error::{instrument, Ids};
use crate::{sandbox, streaming, Cri, CriError};

type Reply<T> = Result<Response<T>, Status>;

/// GetContainerEvents' server stream.
type EventStream =
    Pin<Box<dyn Stream<Item = Result<cri::ContainerEventResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl RuntimeService for Cri {
    async fn version(&self, r: Request<cri::VersionRequest>) -> Reply<cri::VersionResponse> {
        instrument("Version", Ids::NONE, async {
            Ok(version::version(r.get_ref()))
        })
        .await
    }

    async fn status(&self, r: Request<cri::StatusRequest>) -> Reply<cri::StatusResponse> {
        instrument("Status", Ids::NONE, status::status(self, r.into_inner())).await
    }

    async fn runtime_config(
        &self,
        r: Request<cri::RuntimeConfigRequest>,
    ) -> Reply<cri::RuntimeConfigResponse> {
        instrument("RuntimeConfig", Ids::NONE, async {
            Ok(runtime_config::runtime_config(r.get_ref()))
        })
        .await
    }

    async fn update_runtime_config(
        &self,
        r: Request<cri::UpdateRuntimeConfigRequest>,
    ) -> Reply<cri::UpdateRuntimeConfigResponse> {
        instrument("UpdateRuntimeConfig", Ids::NONE, async {
            runtime_config::update(self, r.into_inner())
        })
        .await
    }

    async fn run_pod_sandbox(
        &self,
        r: Request<cri::RunPodSandboxRequest>,
    ) -> Reply<cri::RunPodSandboxResponse> {
        instrument(
            "RunPodSandbox",
            Ids::NONE,
            sandbox::run::run_pod_sandbox(self, r.into_inner()),
        )
        .await
    }

    async fn stop_pod_sandbox(
        &self,
        r: Request<cri::StopPodSandboxRequest>,
    ) -> Reply<cri::StopPodSandboxResponse> {
        instrument(
            "StopPodSandbox",
            Ids::pod(&r.get_ref().pod_sandbox_id),
            sandbox::stop::stop_pod_sandbox(self, r.into_inner()),
        )
        .await
    }

    async fn remove_pod_sandbox(
        &self,
        r: Request<cri::RemovePodSandboxRequest>,
    ) -> Reply<cri::RemovePodSandboxResponse> {
        instrument(
            "RemovePodSandbox",
            Ids::pod(&r.get_ref().pod_sandbox_id),
            sandbox::remove::remove_pod_sandbox(self, r.into_inner()),
        )
        .await
    }

    async fn pod_sandbox_status(
        &self,
        r: Request<cri::PodSandboxStatusRequest>,
    ) -> Reply<cri::PodSandboxStatusResponse> {
        instrument(
            "PodSandboxStatus",
            Ids::pod(&r.get_ref().pod_sandbox_id),
            sandbox::status::pod_sandbox_status(self, r.into_inner()),
        )
        .await
    }

    async fn list_pod_sandbox(
        &self,
        r: Request<cri::ListPodSandboxRequest>,
    ) -> Reply<cri::ListPodSandboxResponse> {
        instrument(
            "ListPodSandbox",
            Ids::NONE,
            sandbox::list::list_pod_sandbox(self, r.into_inner()),
        )
        .await
    }

    async fn create_container(
        &self,
        r: Request<cri::CreateContainerRequest>,
    ) -> Reply<cri::CreateContainerResponse> {
        instrument(
            "CreateContainer",
            Ids::pod(&r.get_ref().pod_sandbox_id),
            containers::create::create(self, r.into_inner()),
        )
        .await
    }

    async fn start_container(
        &self,
        r: Request<cri::StartContainerRequest>,
    ) -> Reply<cri::StartContainerResponse> {
        instrument(
            "StartContainer",
            Ids::container(&r.get_ref().container_id),
            containers::lifecycle::start(self, r.into_inner()),
        )
        .await
    }

    async fn stop_container(
        &self,
        r: Request<cri::StopContainerRequest>,
    ) -> Reply<cri::StopContainerResponse> {
        instrument(
            "StopContainer",
            Ids::container(&r.get_ref().container_id),
            containers::lifecycle::stop(self, r.into_inner()),
        )
        .await
    }

    async fn remove_container(
        &self,
        r: Request<cri::RemoveContainerRequest>,
    ) -> Reply<cri::RemoveContainerResponse> {
        instrument(
            "RemoveContainer",
            Ids::container(&r.get_ref().container_id),
            containers::lifecycle::remove(self, r.into_inner()),
        )
        .await
    }

    async fn list_containers(
        &self,
        r: Request<cri::ListContainersRequest>,
    ) -> Reply<cri::ListContainersResponse> {
        instrument(
            "ListContainers",
            Ids::NONE,
            containers::status::list(self, r.into_inner()),
        )
        .await
    }

    async fn container_status(
        &self,
        r: Request<cri::ContainerStatusRequest>,
    ) -> Reply<cri::ContainerStatusResponse> {
        instrument(
            "ContainerStatus",
            Ids::container(&r.get_ref().container_id),
            containers::status::status(self, r.into_inner()),
        )
        .await
    }

    async fn update_container_resources(
        &self,
        r: Request<cri::UpdateContainerResourcesRequest>,
    ) -> Reply<cri::UpdateContainerResourcesResponse> {
        instrument(
            "UpdateContainerResources",
            Ids::container(&r.get_ref().container_id),
            containers::update::update_resources(self, r.into_inner()),
        )
        .await
    }

    async fn reopen_container_log(
        &self,
        r: Request<cri::ReopenContainerLogRequest>,
    ) -> Reply<cri::ReopenContainerLogResponse> {
        instrument(
            "ReopenContainerLog",
            Ids::container(&r.get_ref().container_id),
            containers::logs::reopen_log(self, r.into_inner()),
        )
        .await
    }

    async fn exec_sync(&self, r: Request<cri::ExecSyncRequest>) -> Reply<cri::ExecSyncResponse> {
        instrument(
            "ExecSync",
            Ids::container(&r.get_ref().container_id),
            containers::exec::exec_sync(self, r.into_inner()),
        )
        .await
    }

    async fn exec(&self, r: Request<cri::ExecRequest>) -> Reply<cri::ExecResponse> {
        instrument(
            "Exec",
            Ids::container(&r.get_ref().container_id),
            streaming::exec::exec(self, r.into_inner()),
        )
        .await
    }

    async fn attach(&self, r: Request<cri::AttachRequest>) -> Reply<cri::AttachResponse> {
        instrument(
            "Attach",
            Ids::container(&r.get_ref().container_id),
            streaming::attach::attach(self, r.into_inner()),
        )
        .await
    }

    async fn port_forward(
        &self,
        r: Request<cri::PortForwardRequest>,
    ) -> Reply<cri::PortForwardResponse> {
        instrument(
            "PortForward",
            Ids::pod(&r.get_ref().pod_sandbox_id),
            streaming::portforward::port_forward(self, r.into_inner()),
        )
        .await
    }

    async fn container_stats(
        &self,
        r: Request<cri::ContainerStatsRequest>,
    ) -> Reply<cri::ContainerStatsResponse> {
        instrument(
            "ContainerStats",
            Ids::container(&r.get_ref().container_id),
            containers::stats::stats(self, r.into_inner()),
        )
        .await
    }

    async fn list_container_stats(
        &self,
        r: Request<cri::ListContainerStatsRequest>,
    ) -> Reply<cri::ListContainerStatsResponse> {
        instrument(
            "ListContainerStats",
            Ids::NONE,
            containers::stats::list_stats(self, r.into_inner()),
        )
        .await
    }

    async fn pod_sandbox_stats(
        &self,
        r: Request<cri::PodSandboxStatsRequest>,
    ) -> Reply<cri::PodSandboxStatsResponse> {
        instrument(
            "PodSandboxStats",
            Ids::pod(&r.get_ref().pod_sandbox_id),
            pod_stats::stats(self, r.into_inner()),
        )
        .await
    }

    async fn list_pod_sandbox_stats(
        &self,
        r: Request<cri::ListPodSandboxStatsRequest>,
    ) -> Reply<cri::ListPodSandboxStatsResponse> {
        instrument(
            "ListPodSandboxStats",
            Ids::NONE,
            pod_stats::list(self, r.into_inner()),
        )
        .await
    }

    async fn checkpoint_container(
        &self,
        r: Request<cri::CheckpointContainerRequest>,
    ) -> Reply<cri::CheckpointContainerResponse> {
        instrument(
            "CheckpointContainer",
            Ids::container(&r.get_ref().container_id),
            async {
                Err(CriError::Unimplemented(
                    "CheckpointContainer: berth does not checkpoint containers (no CRIU support)"
                        .into(),
                ))
            },
        )
        .await
    }

    type GetContainerEventsStream = EventStream;

    async fn get_container_events(
        &self,
        _r: Request<cri::GetEventsRequest>,
    ) -> Reply<Self::GetContainerEventsStream> {
        instrument("GetContainerEvents", Ids::NONE, async {
            events::stream(self)
        })
        .await
    }

    async fn list_metric_descriptors(
        &self,
        _r: Request<cri::ListMetricDescriptorsRequest>,
    ) -> Reply<cri::ListMetricDescriptorsResponse> {
        instrument("ListMetricDescriptors", Ids::NONE, async {
            Ok(metrics::descriptors())
        })
        .await
    }

    async fn list_pod_sandbox_metrics(
        &self,
        _r: Request<cri::ListPodSandboxMetricsRequest>,
    ) -> Reply<cri::ListPodSandboxMetricsResponse> {
        instrument("ListPodSandboxMetrics", Ids::NONE, metrics::list(self)).await
    }
}
