package contract

import "time"

// KindDisk is the kind of a deployment that deletes an orphaned persistent
// disk (DiskDelete): one step on its node.
const KindDisk = "disk"

// Disk states: a disk the stored config gives its node, or one a
// deployment took from its node without deleting its data.
const (
	DiskAttached = "attached"
	DiskOrphaned = "orphaned"
)

// Disk is a node's persistent disk as the engine knows it (de.cmd.disk.list
// answers every one, attached first). An orphaned disk is one a deployment
// that succeeded no longer gave its node, as BOSH orphans the disk of an
// instance it deletes: its data stays on the machine (a device stays
// mounted at /var/vcap/store, a directory stays) until it is deleted on
// request (DiskDelete), or the node is given a disk again, which finds the
// store as it was left.
//
//	{"ip": "10.0.0.5", "size_mb": 1024, "device": "/dev/vdb", "state": "orphaned",
//	 "orphaned": "2026-12-06T23:10:00Z", "deployment": "d-20261206-231000-1a2b"}
type Disk struct {
	IP     string `json:"ip"`
	SizeMB int    `json:"size_mb"`
	Device string `json:"device,omitempty"`
	State  string `json:"state"`
	// Orphaned is when the disk was orphaned, Deployment the deployment
	// that did it (orphaned disks only).
	Orphaned   *time.Time `json:"orphaned,omitempty"`
	Deployment string     `json:"deployment,omitempty"`
}

// DiskDelete deletes the orphaned disk of node IP (de.cmd.disk.delete):
// a deployment of kind disk whose one step unmounts the store, takes it
// out of /etc/fstab, erases the device's filesystem signatures and removes
// /var/vcap/store, then checks that none of it is left.
//
//	{"v": 1, "ip": "10.0.0.5", "actor": "alice"}
type DiskDelete struct {
	V  int    `json:"v,omitempty"`
	IP string `json:"ip"`
	// Actor is who asked, as the API's token names them (the API sets it).
	Actor string `json:"actor,omitempty"`
}

// DiskDeleteStarted answers a DiskDelete: the deployment that deletes it.
//
//	{"id": "d-20261206-231500-3c4d", "ip": "10.0.0.5"}
type DiskDeleteStarted struct {
	ID string `json:"id"`
	IP string `json:"ip"`
}
