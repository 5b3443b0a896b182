/**
 * The newest migration this build's code needs (a file of migrations/, without `.sql`); a test
 * keeps it equal to the folder's last. `GET /health?deep=1` names a database behind it.
 */
export const LATEST_MIGRATION = "0014_agent_upgrades";
