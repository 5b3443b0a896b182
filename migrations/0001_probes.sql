CREATE TABLE `probes` (
	`id` text PRIMARY KEY NOT NULL,
	`worker_id` text NOT NULL,
	`pool` text NOT NULL,
	`command` text NOT NULL,
	`requested_by` text NOT NULL,
	`status` text NOT NULL,
	`exit_code` integer,
	`output` text,
	`truncated` integer DEFAULT false NOT NULL,
	`error` text,
	`created_at` integer NOT NULL,
	`finished_at` integer
);
--> statement-breakpoint
CREATE INDEX `probes_worker` ON `probes` (`worker_id`,`created_at`);