CREATE TABLE `audit_events` (
	`id` text PRIMARY KEY NOT NULL,
	`at` integer NOT NULL,
	`actor` text NOT NULL,
	`action` text NOT NULL,
	`project` text,
	`target` text,
	`detail` text,
	`ip` text
);
--> statement-breakpoint
CREATE INDEX `audit_project_id` ON `audit_events` (`project`,`id`);--> statement-breakpoint
CREATE INDEX `audit_actor_id` ON `audit_events` (`actor`,`id`);--> statement-breakpoint
CREATE TABLE `members` (
	`project` text NOT NULL,
	`user_id` text NOT NULL,
	`role` text NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`project`, `user_id`)
);
--> statement-breakpoint
CREATE INDEX `members_user` ON `members` (`user_id`);--> statement-breakpoint
CREATE TABLE `projects` (
	`name` text PRIMARY KEY NOT NULL,
	`quotas` text DEFAULT '{}' NOT NULL,
	`weight` real DEFAULT 1 NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `sessions` (
	`id` text PRIMARY KEY NOT NULL,
	`hash` text NOT NULL,
	`token_id` text NOT NULL,
	`user_id` text,
	`ip` text,
	`user_agent` text,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	`last_used_at` integer,
	`revoked_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `sessions_hash` ON `sessions` (`hash`);--> statement-breakpoint
CREATE INDEX `sessions_user` ON `sessions` (`user_id`);--> statement-breakpoint
CREATE TABLE `users` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `users_name` ON `users` (`name`);--> statement-breakpoint
ALTER TABLE `datasets` ADD `project` text DEFAULT 'default' NOT NULL;--> statement-breakpoint
CREATE INDEX `datasets_project_id` ON `datasets` (`project`,`id`);--> statement-breakpoint
ALTER TABLE `jobs` ADD `project` text DEFAULT 'default' NOT NULL;--> statement-breakpoint
ALTER TABLE `jobs` ADD `name` text;--> statement-breakpoint
ALTER TABLE `jobs` ADD `tags` text DEFAULT '[]' NOT NULL;--> statement-breakpoint
ALTER TABLE `jobs` ADD `submitted_by` text DEFAULT 'admin' NOT NULL;--> statement-breakpoint
CREATE INDEX `jobs_project_id` ON `jobs` (`project`,`id`);--> statement-breakpoint
CREATE INDEX `jobs_project_status` ON `jobs` (`project`,`status`);--> statement-breakpoint
ALTER TABLE `tokens` ADD `user_id` text;--> statement-breakpoint
ALTER TABLE `tokens` ADD `expires_at` integer;--> statement-breakpoint
CREATE INDEX `tokens_user` ON `tokens` (`user_id`);--> statement-breakpoint
-- Upgrade: everything that exists belongs to project `default`, every existing API token becomes a user of its own (named after the token), and those users own every project that exists now, so nobody loses what they could do before.
INSERT INTO `projects` (`name`, `quotas`, `weight`, `created_at`) VALUES ('default', '{}', 1, CAST(unixepoch('subsec') * 1000 AS INTEGER)) ON CONFLICT DO NOTHING;--> statement-breakpoint
-- Secrets named their project before projects existed: each of those becomes a project too, so its secrets stay reachable.
INSERT INTO `projects` (`name`, `quotas`, `weight`, `created_at`) SELECT DISTINCT `project`, '{}', 1, CAST(unixepoch('subsec') * 1000 AS INTEGER) FROM `secrets` WHERE true ON CONFLICT DO NOTHING;--> statement-breakpoint
-- Stored specs gain the fields every reader now expects, as the API would have filled them.
UPDATE `jobs` SET `spec` = json_set(`spec`, '$.project', 'default', '$.name', NULL, '$.tags', json('[]'), '$.secrets', json('{}')) WHERE json_extract(`spec`, '$.project') IS NULL;--> statement-breakpoint
INSERT INTO `users` (`id`, `name`, `created_at`)
  SELECT 'u_' || substr(t.`id`, 5),
    CASE WHEN (SELECT count(*) FROM `tokens` d WHERE d.`kind` = 'user' AND d.`name` = t.`name`) > 1 THEN t.`name` || '-' || substr(t.`id`, -6) ELSE t.`name` END,
    t.`created_at`
  FROM `tokens` t WHERE t.`kind` = 'user';--> statement-breakpoint
UPDATE `tokens` SET `user_id` = 'u_' || substr(`id`, 5) WHERE `kind` = 'user';--> statement-breakpoint
INSERT INTO `members` (`project`, `user_id`, `role`, `created_at`) SELECT p.`name`, u.`id`, 'owner', u.`created_at` FROM `users` u CROSS JOIN `projects` p;--> statement-breakpoint
UPDATE `jobs` SET `submitted_by` = coalesce((SELECT u.`name` FROM `tokens` t JOIN `users` u ON u.`id` = t.`user_id` WHERE t.`id` = `jobs`.`created_by`), 'admin');
