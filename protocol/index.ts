export { PROTOCOL_VERSION } from "./version.ts";
export { ErrorCode } from "./errors.ts";
export { CloseCode, FATAL_CLOSES } from "./close-codes.ts";
export { decodeFrame, encode, FRAME_LIMITS, HEARTBEAT_ACK_FRAME, HEARTBEAT_FRAME, packFrames } from "./codec.ts";
export type { DecodeResult } from "./codec.ts";
export {
  FailureReason,
  JOB_LIMITS,
  JobLimits,
  JobRequest,
  JobRequirements,
  JobSpec,
  JobStatus,
  JobTag,
  Labels,
  PoolName,
  TERMINAL_STATUSES,
  utf8Length,
} from "./job.ts";
export type { JobKind, JobTask } from "./job.ts";
export { inputSource, JobInput } from "./job.ts";
export { ArrayPlace, ArrayRequest, Dependency, DependencyCondition, DependencyRef, expandIndex, QueueTtl, RetryOn, RetryPolicy, WORKFLOW_LIMITS } from "./workflow.ts";
export {
  ArtifactComplete,
  ArtifactPrepare,
  ArtifactUpload,
  CompletedPart,
  DatasetCreate,
  ObjectName,
  PartUrl,
  PartUrlsRequest,
  TRANSFER_LIMITS,
  Upload,
  UploadComplete,
} from "./transfer.ts";
export {
  AgentToCoordinator,
  AttemptRef,
  AttemptUsage,
  CAPS_LIMITS,
  CoordinatorToAgent,
  GpuDevice,
  InputDownload,
  LOG_LIMITS,
  LogLine,
  LogStream,
  MAX_LOG_BATCH_LINES,
  PROBE_LIMITS,
  ProbeRequest,
  WorkerCaps,
} from "./messages.ts";
export type { MessageOf } from "./messages.ts";
export { AgentVersion, MAX_BUNDLE_BYTES, UPGRADE_STATES, UpgradeOrder, UpgradeReport, UpgradeState } from "./upgrade.ts";
export { cpusMilli, startsBeside } from "./slots.ts";
export type { SlotClaim } from "./slots.ts";
export {
  COMMIT_ID,
  DockerfilePath,
  envKey,
  GitRef,
  ProjectName,
  REPO_LIMITS,
  RepoCredentials,
  RepoSource,
  repoKey,
  RepoUrl,
  ResolvedCommits,
  SecretName,
  WarmCache,
} from "./repo.ts";
export {
  AttemptSandbox,
  BuildNetwork,
  EgressTarget,
  ImagePattern,
  imageMatches,
  JobNetwork,
  OCI_RUNTIME,
  PoolSandbox,
  Runtime,
  SANDBOX_LIMITS,
} from "./sandbox.ts";
export { JobEvent, JobEventType, jobEventType } from "./events.ts";
export {
  CREDITED,
  decodeTunnelFrame,
  encodeTunnelFrame,
  ExecChannel,
  ExecControl,
  FrameType,
  jsonFrame,
  messageFrame,
  portPath,
  PortNumber,
  readJson,
  readMessage,
  readWindow,
  ReceiveWindow,
  ResetCode,
  SendWindow,
  TUNNEL_LIMITS,
  TunnelEnd,
  TunnelHead,
  TunnelOpen,
  TunnelReset,
  TunnelResize,
  TunnelTarget,
  windowFrame,
} from "./tunnel.ts";
export type { TunnelFrame } from "./tunnel.ts";
export { JobPort, JUPYTER_PORT, JupyterTask } from "./job.ts";
export { WorkerId } from "./job.ts";
