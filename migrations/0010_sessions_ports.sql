CREATE TABLE `port_links` (
	`id` text PRIMARY KEY NOT NULL,
	`hash` text NOT NULL,
	`job_id` text NOT NULL,
	`port` integer NOT NULL,
	`token_id` text NOT NULL,
	`created_by` text NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	`used_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `port_links_hash` ON `port_links` (`hash`);--> statement-breakpoint
CREATE TABLE `port_sessions` (
	`id` text PRIMARY KEY NOT NULL,
	`hash` text NOT NULL,
	`job_id` text NOT NULL,
	`port` integer NOT NULL,
	`token_id` text NOT NULL,
	`created_by` text NOT NULL,
	`idle_timeout_s` integer NOT NULL,
	`created_at` integer NOT NULL,
	`last_used_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `port_sessions_hash` ON `port_sessions` (`hash`);--> statement-breakpoint
CREATE INDEX `port_sessions_job` ON `port_sessions` (`job_id`);