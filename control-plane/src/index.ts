import { app } from "./app.ts";

export { Coordinator } from "./coordinator/coordinator.ts";
export default app;
