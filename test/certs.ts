/**
 * A throw-away certificate authority for the TLS tests, made with openssl at test time: a CA,
 * and certificates it signs for a name with the subjectAltName given (IP 127.0.0.1 by default).
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "./support.js";

export interface TestCa {
  /** The folder holding every file. */
  dir: string;
  /** The CA certificate, for `ca_file`. */
  ca: string;
  /** A key and a certificate signed by the CA. */
  issue(name: string, san?: string): { cert: string; key: string };
  /** A certificate's SHA-256 fingerprint as openssl prints it (AB:CD:…). */
  fingerprint(cert: string): string;
}

export function testCa(): TestCa {
  const dir = tempDir("aio-test-ca-");
  const openssl = (...args: string[]) =>
    execFileSync("openssl", args, { cwd: dir, encoding: "utf8", stdio: "pipe" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl(
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "2",
    "-subj",
    "/CN=AIO test cluster CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  );
  return {
    dir,
    ca: join(dir, "ca.crt"),
    issue(name, san = "IP:127.0.0.1,DNS:localhost") {
      writeFileSync(
        join(dir, `${name}.ext`),
        `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n`,
      );
      openssl(
        "req",
        ...ec,
        "-keyout",
        `${name}.key`,
        "-out",
        `${name}.csr`,
        "-subj",
        `/CN=${name}`,
      );
      openssl(
        "x509",
        "-req",
        "-in",
        `${name}.csr`,
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        `${name}.crt`,
        "-days",
        "2",
        "-extfile",
        `${name}.ext`,
      );
      return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
    },
    fingerprint(cert) {
      return openssl("x509", "-noout", "-fingerprint", "-sha256", "-in", cert)
        .trim()
        .split("=")[1] as string;
    },
  };
}
