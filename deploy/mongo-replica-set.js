// Health check of the "mongodb" service in docker-compose.yml, run by mongosh every few seconds.
// ditto-compat writes state and journal in one transaction, which MongoDB allows on a replica set only: the
// first run initiates the single-node replica set rs0 (once; later runs find it initiated), and the check
// passes once this node is the writable primary.
try {
  rs.status();
} catch (error) {
  if (error.codeName !== "NotYetInitialized") {
    throw error;
  }
  // The member's host is the compose service name, the address ditto-compat's driver will be told about.
  rs.initiate({ _id: "rs0", members: [{ _id: 0, host: "mongodb:27017" }] });
}
if (db.hello().isWritablePrimary !== true) {
  quit(1);
}
