CREATE TABLE `artifacts` (
	`job_id` text NOT NULL,
	`attempt` integer NOT NULL,
	`name` text NOT NULL,
	`size` integer NOT NULL,
	`sha256` text NOT NULL,
	`key` text NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`job_id`, `attempt`, `name`)
);
--> statement-breakpoint
CREATE TABLE `datasets` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`size` integer NOT NULL,
	`sha256` text,
	`status` text NOT NULL,
	`key` text NOT NULL,
	`upload_id` text,
	`part_size` integer,
	`created_by` text NOT NULL,
	`created_at` integer NOT NULL,
	`completed_at` integer
);
--> statement-breakpoint
CREATE INDEX `datasets_status_created` ON `datasets` (`status`,`created_at`);