CREATE TABLE `job_arrays` (
	`id` text PRIMARY KEY NOT NULL,
	`project` text NOT NULL,
	`pool` text NOT NULL,
	`name` text,
	`count` integer NOT NULL,
	`submitted_by` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `job_arrays_project` ON `job_arrays` (`project`,`id`);--> statement-breakpoint
CREATE TABLE `job_deps` (
	`child` text NOT NULL,
	`parent` text NOT NULL,
	`parent_kind` text NOT NULL,
	`condition` text NOT NULL,
	PRIMARY KEY(`child`, `parent`)
);
--> statement-breakpoint
CREATE INDEX `job_deps_parent` ON `job_deps` (`parent`);--> statement-breakpoint
CREATE TABLE `schedule_runs` (
	`schedule_id` text NOT NULL,
	`tick_at` integer NOT NULL,
	`job_id` text,
	`outcome` text NOT NULL,
	`message` text,
	`at` integer NOT NULL,
	PRIMARY KEY(`schedule_id`, `tick_at`)
);
--> statement-breakpoint
CREATE TABLE `schedules` (
	`id` text PRIMARY KEY NOT NULL,
	`project` text NOT NULL,
	`name` text NOT NULL,
	`cron` text NOT NULL,
	`timezone` text NOT NULL,
	`job` text NOT NULL,
	`overlap` text NOT NULL,
	`paused` integer DEFAULT false NOT NULL,
	`next_run_at` integer,
	`last_run_at` integer,
	`submitted_by` text NOT NULL,
	`created_by` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `schedules_project_name` ON `schedules` (`project`,`name`);--> statement-breakpoint
CREATE INDEX `schedules_next` ON `schedules` (`paused`,`next_run_at`);--> statement-breakpoint
DROP INDEX `jobs_queue_by_project`;--> statement-breakpoint
ALTER TABLE `jobs` ADD `array_id` text;--> statement-breakpoint
ALTER TABLE `jobs` ADD `array_index` integer;--> statement-breakpoint
ALTER TABLE `jobs` ADD `rerun_of` text;--> statement-breakpoint
ALTER TABLE `jobs` ADD `schedule_id` text;--> statement-breakpoint
ALTER TABLE `jobs` ADD `hold` text;--> statement-breakpoint
ALTER TABLE `jobs` ADD `not_before` integer;--> statement-breakpoint
ALTER TABLE `jobs` ADD `expires_at` integer;--> statement-breakpoint
CREATE INDEX `jobs_ready_by_project` ON `jobs` (`pool`,`status`,`hold`,`project`,"priority" DESC,`id`);--> statement-breakpoint
CREATE INDEX `jobs_array` ON `jobs` (`array_id`,`status`);--> statement-breakpoint
CREATE INDEX `jobs_schedule` ON `jobs` (`schedule_id`,`id`);--> statement-breakpoint
CREATE INDEX `jobs_rerun_of` ON `jobs` (`rerun_of`);--> statement-breakpoint
CREATE INDEX `jobs_queue_expiry` ON `jobs` (`pool`,`expires_at`) WHERE status = 'queued' AND expires_at IS NOT NULL;--> statement-breakpoint
CREATE INDEX `jobs_held` ON `jobs` (`hold`,`not_before`) WHERE hold IS NOT NULL;--> statement-breakpoint
ALTER TABLE `attempts` ADD `usage` text;--> statement-breakpoint
CREATE INDEX `datasets_project_name` ON `datasets` (`project`,`name`);