CREATE TABLE `attempts` (
	`job_id` text NOT NULL,
	`attempt` integer NOT NULL,
	`worker_id` text NOT NULL,
	`status` text NOT NULL,
	`cpus_milli` integer NOT NULL,
	`memory_mb` integer NOT NULL,
	`gpu_indices` text NOT NULL,
	`queued_at` integer NOT NULL,
	`assigned_at` integer NOT NULL,
	`started_at` integer,
	`finished_at` integer,
	`deadline_at` integer,
	`exit_code` integer,
	`failure_reason` text,
	PRIMARY KEY(`job_id`, `attempt`)
);
--> statement-breakpoint
CREATE INDEX `attempts_worker_status` ON `attempts` (`worker_id`,`status`);--> statement-breakpoint
CREATE INDEX `attempts_status_deadline` ON `attempts` (`status`,`deadline_at`);--> statement-breakpoint
CREATE TABLE `jobs` (
	`id` text PRIMARY KEY NOT NULL,
	`pool` text NOT NULL,
	`kind` text NOT NULL,
	`spec` text NOT NULL,
	`status` text NOT NULL,
	`priority` integer NOT NULL,
	`max_retries` integer NOT NULL,
	`attempt` integer DEFAULT 0 NOT NULL,
	`worker_id` text,
	`exit_code` integer,
	`failure_reason` text,
	`failure_message` text,
	`idempotency_key` text,
	`request_hash` text,
	`created_by` text NOT NULL,
	`created_at` integer NOT NULL,
	`queued_at` integer NOT NULL,
	`assigned_at` integer,
	`started_at` integer,
	`finished_at` integer
);
--> statement-breakpoint
CREATE INDEX `jobs_queue` ON `jobs` (`pool`,`status`,`priority`,`id`);--> statement-breakpoint
CREATE INDEX `jobs_status_id` ON `jobs` (`status`,`id`);--> statement-breakpoint
CREATE UNIQUE INDEX `jobs_idempotency` ON `jobs` (`created_by`,`idempotency_key`);--> statement-breakpoint
CREATE TABLE `log_chunks` (
	`job_id` text NOT NULL,
	`attempt` integer NOT NULL,
	`seq` integer NOT NULL,
	`stream` text NOT NULL,
	`lines` text NOT NULL,
	`bytes` integer NOT NULL,
	PRIMARY KEY(`job_id`, `attempt`, `seq`, `stream`)
);
--> statement-breakpoint
CREATE TABLE `tokens` (
	`id` text PRIMARY KEY NOT NULL,
	`kind` text NOT NULL,
	`pool` text,
	`name` text NOT NULL,
	`hash` text NOT NULL,
	`created_at` integer NOT NULL,
	`last_used_at` integer,
	`revoked_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `tokens_hash` ON `tokens` (`hash`);--> statement-breakpoint
CREATE TABLE `workers` (
	`id` text PRIMARY KEY NOT NULL,
	`pool` text NOT NULL,
	`name` text NOT NULL,
	`online` integer NOT NULL,
	`drain` text,
	`caps` text NOT NULL,
	`slots` integer NOT NULL,
	`agent_version` text NOT NULL,
	`token_id` text NOT NULL,
	`connected_at` integer NOT NULL,
	`last_seen` integer NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `workers_pool_name` ON `workers` (`pool`,`name`);