DROP INDEX `jobs_queue_head`;--> statement-breakpoint
CREATE INDEX `jobs_queue_by_project` ON `jobs` (`pool`,`status`,`project`,"priority" DESC,`id`);