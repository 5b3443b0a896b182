CREATE TABLE `pool_sandbox` (
	`pool` text PRIMARY KEY NOT NULL,
	`policy` text NOT NULL,
	`updated_at` integer NOT NULL,
	`updated_by` text NOT NULL
);
