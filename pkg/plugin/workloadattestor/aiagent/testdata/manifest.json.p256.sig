{"apiVersion":"agentid.dev/v1","keyId":"release-p256","signature":"MEUCIQCUcFFEoGxgzQowoPwrPs8CwX39+PMFQBDGhZg3QapfAwIgY8WWiODYfzfcOhPZgr5+wQNTktbhYqtXtaP1kTdZgPY="}
