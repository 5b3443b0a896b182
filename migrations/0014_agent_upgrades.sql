CREATE TABLE `agent_bundles` (
	`version` text PRIMARY KEY NOT NULL,
	`sha256` text NOT NULL,
	`size` integer NOT NULL,
	`status` text NOT NULL,
	`key` text NOT NULL,
	`created_by` text NOT NULL,
	`created_at` integer NOT NULL,
	`ready_at` integer
);
--> statement-breakpoint
CREATE TABLE `pool_upgrades` (
	`pool` text PRIMARY KEY NOT NULL,
	`version` text NOT NULL,
	`requested_by` text NOT NULL,
	`requested_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `worker_upgrades` (
	`worker_id` text PRIMARY KEY NOT NULL,
	`pool` text NOT NULL,
	`from_version` text NOT NULL,
	`to_version` text NOT NULL,
	`state` text NOT NULL,
	`reason` text,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `worker_upgrades_pool` ON `worker_upgrades` (`pool`);
