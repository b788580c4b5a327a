case {{.Component}} in a) sleep 2 ;; b) sleep 3 ;; c) sleep 1 ;; esac
