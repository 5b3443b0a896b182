CREATE TABLE `secrets` (
	`project` text NOT NULL,
	`name` text NOT NULL,
	`sealed` text NOT NULL,
	`created_by` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`project`, `name`)
);
--> statement-breakpoint
ALTER TABLE `jobs` ADD `resolved` text;--> statement-breakpoint
ALTER TABLE `workers` ADD `warm` text DEFAULT '{"envs":[],"repos":[]}' NOT NULL;