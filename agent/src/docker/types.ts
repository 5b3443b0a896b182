/**
 * The Engine API's request and response shapes, cut down to the fields gridx sets or reads.
 * Names and casing are Docker's own (https://docs.docker.com/reference/api/engine/).
 */

/** `POST /containers/create`: the body, plus the container's name, which goes in the query. */
export interface ContainerCreateOptions {
  name?: string;
  Image: string;
  Entrypoint?: string[];
  Cmd?: string[];
  Env?: string[];
  User?: string;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  NetworkDisabled?: boolean;
  AttachStdout?: boolean;
  AttachStderr?: boolean;
  /** Always false for jobs: the attach stream is then multiplexed, which `FrameDemuxer` reads. */
  Tty?: false;
  OpenStdin?: boolean;
  HostConfig?: HostConfig;
}

/** The limits `POST /containers/{id}/update` can change, named as in `HostConfig`. */
export interface ContainerResources {
  Memory?: number;
  MemorySwap?: number;
  NanoCpus?: number;
  PidsLimit?: number;
}

export interface HostConfig extends ContainerResources {
  Binds?: string[];
  NetworkMode?: string;
  ReadonlyRootfs?: boolean;
  CapDrop?: string[];
  SecurityOpt?: string[];
  /** The OCI runtime, by the name dockerd registered it under; dockerd's default (runc) when absent. */
  Runtime?: string;
  Tmpfs?: Record<string, string>;
  Ulimits?: { Name: string; Soft: number; Hard: number }[];
  IpcMode?: string;
  Init?: boolean;
  Privileged?: boolean;
  AutoRemove?: boolean;
  LogConfig?: { Type: string; Config: Record<string, string> };
  DeviceRequests?: { Driver: string; DeviceIDs: string[]; Capabilities: string[][] }[];
  RestartPolicy?: { Name: "no" | "always" | "unless-stopped" | "on-failure"; MaximumRetryCount?: number };
  /** Namespaced kernel settings inside the container (`net.*` ones need a network of its own). */
  Sysctls?: Record<string, string>;
  /** `host`: the host's user namespace, even on an engine started with --userns-remap. */
  UsernsMode?: string;
  /** Under the cgroupfs driver, the cgroup (a path) the container's own is made in; the engine makes it if need be. */
  CgroupParent?: string;
}

/** `POST /networks/create`. */
export interface NetworkCreateOptions {
  Name: string;
  /** Refuse a second network of the same name rather than make one. */
  CheckDuplicate?: boolean;
  Driver: string;
  EnableIPv6?: boolean;
  /** Driver options: for `bridge`, `com.docker.network.bridge.*`. */
  Options?: Record<string, string>;
  Labels?: Record<string, string>;
}

/** `GET /networks/{id}` and each entry of `GET /networks`. */
export interface NetworkInspect {
  Id: string;
  Name: string;
  Driver: string;
  Labels: Record<string, string> | null;
  Options: Record<string, string> | null;
  /** The subnets Docker's address management gave it. */
  IPAM: { Config: { Subnet?: string; Gateway?: string }[] | null };
}


/** `GET /containers/{id}/json`. */
export interface ContainerInspect {
  Id: string;
  State: { OOMKilled: boolean };
}

/** One entry of `GET /containers/json`. */
export interface ContainerSummary {
  Id: string;
  /** The id (`sha256:…`) of the image it was created from, whatever name that had. */
  ImageID: string;
  Labels: Record<string, string> | null;
  /** "created", "running", "exited", … */
  State: string;
}

/** `GET /images/{name}/json`. */
export interface ImageInspect {
  /** `sha256:…`; a rebuild under the same name gets a new one. */
  Id: string;
  /** `name@sha256:…` for each repository the image was pulled from or pushed to; empty for an image only built here. */
  RepoDigests?: string[] | null;
  /** Names it has; empty for an untagged (intermediate or dangling) image. */
  RepoTags?: string[] | null;
  /** Bytes, its parents' layers included. */
  Size: number;
}

/** One entry of `GET /images/json`. */
export interface ImageSummary {
  Id: string;
  RepoTags: string[] | null;
  /** Seconds since the epoch. */
  Created: number;
  /** Bytes, its parents' layers included. */
  Size: number;
  Labels: Record<string, string> | null;
}

/** `GET /info`. */
export interface EngineInfo {
  Runtimes?: Record<string, unknown>;
  /** "1" or "2". */
  CgroupVersion?: string;
  /** "cgroupfs" or "systemd". */
  CgroupDriver?: string;
  /** `name=seccomp,profile=default`, `name=userns` (started with --userns-remap), ... */
  SecurityOptions?: string[];
  /** The data root; under --userns-remap, `<data-root>/<uid>.<gid>` of the remapped root. */
  DockerRootDir?: string;
}

/** One line of `POST /build`'s JSON-lines progress. A failed build is such a line, not an HTTP error. */
export interface BuildEvent {
  stream?: string;
  error?: string;
  /** `code`: a failed RUN step's exit code. */
  errorDetail?: { message?: string; code?: number };
}

/** One line of `POST /images/create`'s JSON-lines progress: a layer's (`id`) state, or the pull's. */
export interface PullEvent {
  status?: string;
  /** A layer's short id, or the tag for the pull's own lines ("Pulling from acme/tool"). */
  id?: string;
  progressDetail?: { current?: number; total?: number };
  error?: string;
  errorDetail?: { message?: string };
}
