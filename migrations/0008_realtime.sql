CREATE TABLE `job_events` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`job_id` text NOT NULL,
	`project` text NOT NULL,
	`pool` text NOT NULL,
	`status` text NOT NULL,
	`attempt` integer NOT NULL,
	`exit_code` integer,
	`failure_reason` text,
	`at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `job_events_project` ON `job_events` (`project`,`id`);--> statement-breakpoint
CREATE INDEX `job_events_job` ON `job_events` (`job_id`,`id`);--> statement-breakpoint
CREATE TABLE `log_segments` (
	`job_id` text NOT NULL,
	`attempt` integer NOT NULL,
	`first_seq` integer NOT NULL,
	`last_seq` integer NOT NULL,
	`key` text NOT NULL,
	`bytes` integer NOT NULL,
	`lines` integer NOT NULL,
	PRIMARY KEY(`job_id`, `attempt`, `first_seq`)
);
--> statement-breakpoint
CREATE TABLE `webhook_deliveries` (
	`id` text PRIMARY KEY NOT NULL,
	`webhook_id` text NOT NULL,
	`event_id` integer NOT NULL,
	`event` text NOT NULL,
	`payload` text NOT NULL,
	`status` text NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`next_at` integer NOT NULL,
	`last_status` integer,
	`last_error` text,
	`created_at` integer NOT NULL,
	`finished_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `webhook_deliveries_event` ON `webhook_deliveries` (`webhook_id`,`event_id`);--> statement-breakpoint
CREATE INDEX `webhook_deliveries_due` ON `webhook_deliveries` (`status`,`next_at`);--> statement-breakpoint
CREATE INDEX `webhook_deliveries_webhook` ON `webhook_deliveries` (`webhook_id`,`created_at`);--> statement-breakpoint
CREATE TABLE `webhooks` (
	`id` text PRIMARY KEY NOT NULL,
	`project` text,
	`url` text NOT NULL,
	`events` text NOT NULL,
	`sealed_secret` text NOT NULL,
	`created_by` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `webhooks_project` ON `webhooks` (`project`);--> statement-breakpoint
-- Every change of a job's status is an event, in the transaction that made it (see schema.ts jobEvents).
CREATE TRIGGER `job_events_insert` AFTER INSERT ON `jobs` BEGIN
	INSERT INTO `job_events` (`job_id`, `project`, `pool`, `status`, `attempt`, `exit_code`, `failure_reason`, `at`)
	VALUES (NEW.`id`, NEW.`project`, NEW.`pool`, NEW.`status`, NEW.`attempt`, NEW.`exit_code`, NEW.`failure_reason`, NEW.`created_at`);
END;
--> statement-breakpoint
CREATE TRIGGER `job_events_update` AFTER UPDATE OF `status` ON `jobs` WHEN OLD.`status` IS NOT NEW.`status` OR OLD.`attempt` IS NOT NEW.`attempt` BEGIN
	INSERT INTO `job_events` (`job_id`, `project`, `pool`, `status`, `attempt`, `exit_code`, `failure_reason`, `at`)
	VALUES (NEW.`id`, NEW.`project`, NEW.`pool`, NEW.`status`, NEW.`attempt`, NEW.`exit_code`, NEW.`failure_reason`,
		coalesce(CASE NEW.`status` WHEN 'queued' THEN NEW.`queued_at` WHEN 'assigned' THEN NEW.`assigned_at` WHEN 'running' THEN NEW.`started_at` ELSE NEW.`finished_at` END, CAST(unixepoch('subsec') * 1000 AS INTEGER)));
END;
