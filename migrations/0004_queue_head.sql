DROP INDEX `jobs_queue`;--> statement-breakpoint
CREATE INDEX `jobs_queue_head` ON `jobs` (`pool`,`status`,"priority" DESC,`id`);