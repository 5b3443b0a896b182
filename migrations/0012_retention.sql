ALTER TABLE `projects` ADD `retention` text DEFAULT '{}' NOT NULL;--> statement-breakpoint
ALTER TABLE `jobs` ADD `logs_purged_at` integer;--> statement-breakpoint
ALTER TABLE `jobs` ADD `artifacts_purged_at` integer;--> statement-breakpoint
CREATE INDEX `jobs_finished` ON `jobs` (`project`,`finished_at`) WHERE finished_at IS NOT NULL;--> statement-breakpoint
CREATE INDEX `jobs_logs_due` ON `jobs` (`project`,`finished_at`) WHERE finished_at IS NOT NULL AND logs_purged_at IS NULL;--> statement-breakpoint
CREATE INDEX `jobs_artifacts_due` ON `jobs` (`project`,`finished_at`) WHERE finished_at IS NOT NULL AND artifacts_purged_at IS NULL;
