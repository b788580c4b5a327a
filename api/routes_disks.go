package api

import (
	"maps"
	"net/http"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// diskDelete deletes node {ip}'s orphaned persistent disk: 202 {"id",
// "ip"}, a deployment of kind disk, followed and cancelled as any.
func (s *server) diskDelete(w http.ResponseWriter, r *http.Request) {
	ip := r.PathValue("ip")
	if err := contract.CheckNodeIP(ip); err != nil {
		writeError(w, http.StatusBadRequest, "disk: "+err.Error())
		return
	}
	s.call(w, r, subject.DiskDelete(), contract.DiskDelete{V: contract.Version, IP: ip, Actor: actorOf(r.Context())})
}

// diskDocs are the disk routes' OpenAPI entries (routeDocs).
var diskDocs = map[string]opDoc{
	"GET /disks": {id: "listDisks", summary: "The persistent disks: those the stored config gives its nodes, and those deployments orphaned", bus: true,
		desc: "A deployment that succeeded and no longer gives a node the disk the one before it gave orphans that disk, as BOSH orphans the disk of an instance it deletes: " +
			"its data stays on the machine (a device stays mounted at /var/vcap/store) until DELETE /disks/{ip}, or until a config gives the node a disk again, whose deploy finds the store as it was left.",
		ok: []reply{ok[[]contract.Disk](200, "every disk: attached ones first, by node, then orphaned ones, by node, each with when and by which deployment")}},
	"DELETE /disks/{ip}": {id: "deleteDisk", summary: "Delete an orphaned persistent disk: a deployment of kind disk", bus: true,
		desc: "One step on the node, as root: /var/vcap/store unmounted (refused, saying so, while something holds it) and taken out of /etc/fstab, the device's filesystem signatures erased (wipefs), the store's content removed; " +
			"the step ends by checking that the node shows all of it. Once it succeeded the disk is no longer listed. The data is gone for good.",
		ok: []reply{ok[contract.DiskDeleteStarted](202, "the deletion started: follow its deployment at /deployments/{id}")},
		errs: []reply{fails(http.StatusBadRequest, "the ip is not an IP address"), noConfig,
			fails(http.StatusNotFound, "no orphaned disk on that node: the error names those there are"),
			fails(http.StatusConflict, "the stored config gives the node a disk again, or a deployment runs")}},
}

func init() { maps.Copy(routeDocs, diskDocs) }
