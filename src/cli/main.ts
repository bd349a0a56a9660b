#!/usr/bin/env node
/** The `aio` command line. */
import { Command } from "commander";
import { packageVersion } from "./paths.js";
import { runCommand } from "./run.js";

const program = new Command()
  .name("aio")
  .description("AIO Core: run plugin nodes and call their plugins")
  .version(packageVersion());

program
  .command("run")
  .description(
    "start a node and keep it running until Ctrl-C (no config: ./config.yml, else the bundled example)",
  )
  .argument("[config]", "path to config.yml")
  .action(runCommand);

await program.parseAsync();
