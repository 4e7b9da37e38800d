my %h; for my $i (1..400000) { $h{"key$i"} = [ ("x" x ($i % 50)), $i ]; }
my @k = sort keys %h; my $t=0; for (@k) { $t += length($h{$_}[0]); delete $h{$_} if $_ =~ /7$/; }
my @a = map { join(",", 1..($_ % 20)) } 1..200000; print "$t ", scalar(@a), "\n";
