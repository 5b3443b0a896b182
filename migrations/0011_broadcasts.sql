CREATE TABLE `broadcasts` (
	`id` text PRIMARY KEY NOT NULL,
	`project` text NOT NULL,
	`pool` text NOT NULL,
	`name` text,
	`count` integer NOT NULL,
	`submitted_by` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `broadcasts_project` ON `broadcasts` (`project`,`id`);--> statement-breakpoint
CREATE TABLE `broadcast_jobs` (
	`broadcast_id` text NOT NULL,
	`worker_id` text NOT NULL,
	`job_id` text NOT NULL,
	PRIMARY KEY(`broadcast_id`, `worker_id`)
);
--> statement-breakpoint
CREATE INDEX `broadcast_jobs_job` ON `broadcast_jobs` (`job_id`);
