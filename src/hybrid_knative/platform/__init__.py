"""The kit components are written against: the Component declaration, the step Context, the install
record with its typed undo entries, applying objects, shared waits. Below install/ (which runs plans)
and components/ (which declares them); above manifests/, kube/, system/, dns/."""
